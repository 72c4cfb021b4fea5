"""The GitHub backend's hook implementations: its backend class, its auth provider and its
commands."""

from __future__ import annotations

from typing import TYPE_CHECKING

from private_pypi_core.hookspecs import hookimpl
from private_pypi_github.access import GitHubTokenProvider
from private_pypi_github.backend import GitHubBackend

if TYPE_CHECKING:
    import typer

    from private_pypi_core.api import AuthProvider, Backend


@hookimpl
def private_pypi_backends() -> list[type[Backend]]:
    return [GitHubBackend]


@hookimpl
def private_pypi_auth_providers() -> list[type[AuthProvider]]:
    return [GitHubTokenProvider]


@hookimpl
def private_pypi_commands(app: typer.Typer) -> None:
    # Only the command line asks: a server's workers do without typer.
    from private_pypi_github.commands import gen_gh_pages, init_pkg_repo

    app.command(name="github.init_pkg_repo")(init_pkg_repo)
    app.command(name="github.gen_gh_pages")(gen_gh_pages)
