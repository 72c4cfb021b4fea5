"""``private_pypi export``: a package repository's index written as a static site
(``export``), from the command line."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated
from urllib.parse import quote, urlsplit

import typer

from private_pypi_core.backend import DistFile
from private_pypi_core.errors import ConfigError
from private_pypi_core.export import SITE_FOLDER, FileUrl, export_site
from private_pypi_core.progress import progress_bar


def export(
    ctx: typer.Context,
    type: Annotated[str, typer.Argument(help="Backend type, e.g. file_system.")],
    name: Annotated[str, typer.Argument(help="Name of the package repository.")],
    dest: Annotated[
        Path, typer.Argument(help="The folder to write: new, empty, or an earlier export.")
    ],
    config: Annotated[
        Path | None,
        typer.Option("--config", help="A config file whose [NAME] table holds the settings."),
    ] = None,
    root: Annotated[
        Path, typer.Option("--root", help="The server's ROOT (for backends that keep data there).")
    ] = Path("."),
    secret: Annotated[
        str | None,
        typer.Option(
            "--secret",
            help="The repository's admin secret, for a store that needs one (GitHub: the "
            "server's token, unless the settings name token_env).",
        ),
    ] = None,
    secret_env: Annotated[
        str | None, typer.Option("--secret_env", help="Read the admin secret from this variable.")
    ] = None,
    files_url: Annotated[
        str,
        typer.Option(
            "--files_url",
            help="Link each file to URL/<project>/<filename> instead of copying it; its "
            ".metadata must be served beside it (as the store lays them out).",
        ),
    ] = "",
) -> None:
    """Write a package repository's index as a static site, for any web server to host.

    DEST/simple/ gets the server's pages (PEP 503 HTML as index.html, PEP 691 JSON as
    index.json), the core metadata files and the distribution files: serve DEST and point
    installers at its /simple/. Run it again on the same DEST to update it: unchanged files
    are kept, files no longer listed are removed. The repository's settings come from its
    table in --config and from any other --key=value flag, as for update_index.
    """
    from private_pypi_core.cli import parse_extra_flags, refuse_composite
    from private_pypi_core.config import config_from_flags, config_table
    from private_pypi_core.plugins import backend_class

    settings = config_table(config, name, type) if config is not None else {}
    repo = config_from_flags(type, name, parse_extra_flags(ctx.args), base=settings)
    refuse_composite(repo, "export its members, or the repositories it stands in for")
    admin_secret = _admin_secret(secret, secret_env)
    backend = backend_class(type)(repo.config, root.resolve(), admin_secret=admin_secret)
    file_url = _under(files_url) if files_url else None
    with progress_bar("Exporting", "files") as progress:
        site = export_site(backend, dest, file_url=file_url, progress=progress)
    projects = sum(path.endswith("/index.html") for path in site)
    typer.echo(f"Exported {projects} projects of {name!r} to {dest / SITE_FOLDER}/.")


def _admin_secret(secret: str | None, secret_env: str | None) -> str | None:
    if secret is None and secret_env:
        secret = os.environ.get(secret_env)
        if not secret:
            raise ConfigError(f"--secret_env names {secret_env!r}, which is not set")
    return secret


def _under(base_url: str) -> FileUrl:
    """Files at ``base_url/<project>/<filename>``."""
    parsed = urlsplit(base_url)
    if not (parsed.scheme in ("http", "https") and parsed.netloc) and not base_url.startswith("/"):
        raise ConfigError(
            f"--files_url must be an http(s) URL or a path from the host's root: {base_url!r}"
        )
    base = base_url.rstrip("/")

    def url(dist: DistFile) -> str:
        return f"{base}/{quote(dist.project)}/{quote(dist.filename)}"

    return url
