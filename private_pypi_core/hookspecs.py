"""Every hook a private-pypi plugin can implement: the plugin author's contract.

A plugin is a module registered under the ``private_pypi`` entry-point group, e.g. in its
``pyproject.toml``::

    [project.entry-points.private_pypi]
    mystore = "private_pypi_mystore.plugin"

The module implements any of the hooks below, marked with ``hookimpl``. Hooks are called with
keyword arguments, so an implementation takes only the arguments it needs.

A storage backend is a ``private_pypi_core.backend.Backend`` subclass: its methods are the
storage contract (``list_files``, ``open_file``, ``write_file``, ``delete_file``), the auth
contract (``authenticate``: secret -> ``Access.NONE/READ/WRITE``) and the index-sync contract
(``read_index`` / ``write_index`` of the remote index file; the core builds that file from
``list_files`` and keeps the server's local copy in sync). ``private_pypi_core.testing``
holds the conformance suite every backend must pass.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import typer

    from private_pypi_core.backend import Backend

PROJECT_NAME = "private_pypi"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def private_pypi_backends() -> list[type[Backend]]:
    """Return the backend classes this plugin provides.

    Called once when the server or a command starts. Each class's ``type`` attribute is the
    ``type = "..."`` value of the config tables it serves; two plugins may not claim the same
    type. Example::

        @hookimpl
        def private_pypi_backends():
            return [MyStoreBackend]
    """
    raise NotImplementedError


@hookspec
def private_pypi_commands(app: typer.Typer) -> None:
    """Add this plugin's commands to the ``private_pypi`` command line.

    Called once when the CLI starts. Name commands ``<plugin>.<command>`` so they cannot
    clash with the core's or another plugin's. Example::

        @hookimpl
        def private_pypi_commands(app):
            app.command(name="mystore.init_pkg_repo")(init_pkg_repo)
    """
    raise NotImplementedError
