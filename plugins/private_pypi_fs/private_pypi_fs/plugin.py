"""The file-system backend's hook implementations: its backend class and its commands."""

from __future__ import annotations

from typing import TYPE_CHECKING

from private_pypi_core.api import hookimpl
from private_pypi_fs.backend import FileSystemBackend

if TYPE_CHECKING:
    import typer

    from private_pypi_core.api import Backend


@hookimpl
def private_pypi_backends() -> list[type[Backend]]:
    return [FileSystemBackend]


@hookimpl
def private_pypi_commands(app: typer.Typer) -> None:
    # Only the command line asks: a server's workers do without typer.
    from private_pypi_fs.commands import init_pkg_repo

    app.command(name="fs.init_pkg_repo")(init_pkg_repo)
