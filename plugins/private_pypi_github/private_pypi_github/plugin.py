"""The GitHub backend's hook implementations: its backend class and its commands."""

from __future__ import annotations

from typing import TYPE_CHECKING

from private_pypi_core.hookspecs import hookimpl
from private_pypi_github.backend import GitHubBackend
from private_pypi_github.commands import gen_gh_pages, init_pkg_repo

if TYPE_CHECKING:
    import typer

    from private_pypi_core.backend import Backend


@hookimpl
def private_pypi_backends() -> list[type[Backend]]:
    return [GitHubBackend]


@hookimpl
def private_pypi_commands(app: typer.Typer) -> None:
    app.command(name="github.init_pkg_repo")(init_pkg_repo)
    app.command(name="github.gen_gh_pages")(gen_gh_pages)
