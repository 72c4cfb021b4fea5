"""Every hook a private-pypi plugin can implement: the plugin author's contract.

A plugin is a module registered under the ``private_pypi`` entry-point group, e.g. in its
``pyproject.toml``::

    [project.entry-points.private_pypi]
    mystore = "private_pypi_mystore.plugin"

The module implements any of the hooks below, marked with ``hookimpl`` (also in
``private_pypi_core.api``, with every other name a plugin may use). Hooks are called with
keyword arguments, so an implementation takes only the arguments it needs.

- ``private_pypi_backends``: storage backends (``private_pypi_core.backend.Backend``: store,
  list, read files; read and write the remote index file).
- ``private_pypi_auth_providers``: who may do what (``private_pypi_core.auth_provider``); the
  core's own, ``secrets``, is registered through this hook too.
- ``private_pypi_index_changed``: told after files are published, yanked, unyanked, or when a
  sync or a rebuild changed the index.
- ``private_pypi_commands``: commands of the ``private_pypi`` command line.

``private_pypi_core.testing`` holds the conformance suite every backend must pass.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import typer

    from private_pypi_core.auth_provider import AuthProvider
    from private_pypi_core.backend import Backend
    from private_pypi_core.events import IndexChange

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
def private_pypi_auth_providers() -> list[type[AuthProvider]]:
    """Return the auth provider classes this plugin provides.

    Called once when the server or a command starts. Each class's ``name`` is how a
    repository's ``auth`` list names it; two plugins may not claim the same name. Example::

        @hookimpl
        def private_pypi_auth_providers():
            return [HtpasswdProvider]
    """
    raise NotImplementedError


@hookspec
def private_pypi_index_changed(change: IndexChange) -> None:
    """React to a change of a repository's index: send a webhook, purge a CDN, mirror.

    Called after the change is stored, in a background thread of the process that made or saw
    it, one change at a time: ``change.reason`` is ``"published"``, ``"yanked"``,
    ``"unyanked"``, ``"synced"`` (this server's sync found the store's index changed, e.g. by
    another server), ``"rebuilt"`` (``update_index``) or ``"proxied"`` (a proxy repository
    stored what its upstream lists: a page fetched, a file's size learned); ``added``,
    ``removed`` and ``changed`` are the files concerned (``IndexChange`` documents them). An
    exception is logged and forgotten; a slow hook delays only the changes after it, never a
    request, and changes beyond a backlog of ``events.BACKLOG`` are dropped with a warning.
    Example::

        @hookimpl
        def private_pypi_index_changed(change):
            for file in change.added:
                requests.post(WEBHOOK, json={"repository": change.repository,
                                             "file": file.filename}, timeout=5)
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
