"""``private_pypi fs.init_pkg_repo``: set up a new file-system package repository."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from private_pypi_core.api import add_tables, generate_secret
from private_pypi_fs.backend import FileSystemBackend


def init_pkg_repo(
    name: Annotated[str, typer.Option("--name", help="Name of the new package repository.")],
    config: Annotated[
        Path, typer.Option("--config", help="Package repository config (TOML) to add it to.")
    ],
    admin_secret: Annotated[
        Path, typer.Option("--admin_secret", help="Admin secret file (TOML) to add it to.")
    ],
    storage_path: Annotated[
        str,
        typer.Option(
            "--storage_path",
            help="Folder for the packages; default: <ROOT>/cache/<name>/storage of the server.",
        ),
    ] = "",
) -> None:
    """Create a file-system package repository with fresh read and write secrets.

    The secrets are written to the two files (mode 0600), never printed.
    """
    table = {
        "type": FileSystemBackend.type,
        "read_secret": generate_secret(),
        "write_secret": generate_secret(),
    }
    if storage_path:
        Path(storage_path).mkdir(parents=True, exist_ok=True)
        table["storage_path"] = str(Path(storage_path).resolve())
    admin_table = {"type": FileSystemBackend.type, "raw": table["write_secret"]}
    add_tables({config: (name, table), admin_secret: (name, admin_table)})
    typer.echo(f"Added repository [{name}] to {config} and {admin_secret}.")
    typer.echo(f"Its read_secret (for pip) and write_secret (for twine) are in {config}.")
