"""Commands that manage a running server over HTTP (yank, status, tokens) and read its audit
trail."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from private_pypi_core.audit import AuditLog, describe
from private_pypi_core.backend import check_repository_name
from private_pypi_core.errors import ConfigError
from private_pypi_core.printable import printable
from private_pypi_core.server_client import DEFAULT_URL, call, call_json, server_url
from private_pypi_core.tokens import PREFIX, TOKEN_USERNAME, parse_lifetime

ServerUrl = Annotated[
    str,
    typer.Option(
        "--url",
        help="The server, e.g. https://pypi.example.com (no secret in it: see --secret_env).",
        callback=server_url,
    ),
]
RepositoryName = Annotated[
    str, typer.Option("--repository", help="The package repository (the username).")
]
Secret = Annotated[
    str | None,
    typer.Option("--secret", help="The repository's write secret, or a token that may do this."),
]
SecretEnv = Annotated[
    str | None, typer.Option("--secret_env", help="Read the secret from this variable.")
]
Project = Annotated[str, typer.Argument(help="The project, e.g. my-package.")]
Target = Annotated[str, typer.Argument(help="A version (all its files) or one filename.")]


def secret_from(secret: str | None, secret_env: str | None) -> str:
    """The secret that ``--secret`` or ``--secret_env`` give."""
    if secret is None and secret_env:
        secret = os.environ.get(secret_env)
    if not secret:
        raise ConfigError("give --secret, or --secret_env naming a set variable")
    return secret


def credential(repository: str, secret: str | None, secret_env: str | None) -> tuple[str, str]:
    """The basic-auth credential the flags give: a token goes as ``__token__``."""
    check_repository_name(repository)
    value = secret_from(secret, secret_env)
    return (TOKEN_USERNAME if value.startswith(PREFIX) else repository), value


def yank(
    project: Project,
    target: Target,
    repository: RepositoryName,
    url: ServerUrl = DEFAULT_URL,
    secret: Secret = None,
    secret_env: SecretEnv = None,
    reason: Annotated[str, typer.Option("--reason", help="Why, shown by installers.")] = "",
) -> None:
    """Yank files (PEP 592): installers skip them unless a version pins them exactly."""
    form = {"project": project, "target": target, "reason": reason}
    auth = credential(repository, secret, secret_env)
    _echo(call("POST", url, "yank", auth, form).text)


def unyank(
    project: Project,
    target: Target,
    repository: RepositoryName,
    url: ServerUrl = DEFAULT_URL,
    secret: Secret = None,
    secret_env: SecretEnv = None,
) -> None:
    """Undo a yank."""
    form = {"project": project, "target": target}
    auth = credential(repository, secret, secret_env)
    _echo(call("POST", url, "unyank", auth, form).text)


def status(
    project: Project,
    status: Annotated[
        str,
        typer.Argument(help="active, archived (no uploads), quarantined (no files) or deprecated."),
    ],
    repository: RepositoryName,
    url: ServerUrl = DEFAULT_URL,
    secret: Secret = None,
    secret_env: SecretEnv = None,
    reason: Annotated[str, typer.Option("--reason", help="Why, shown with the status.")] = "",
) -> None:
    """Set a project's status (PEP 792), shown on its pages: archived refuses uploads,
    quarantined also serves none of its files, deprecated only says so; active undoes them.
    Needs the write secret: a token never changes a status."""
    form = {"project": project, "status": status, "reason": reason}
    auth = credential(repository, secret, secret_env)
    _echo(call("POST", url, "_/status", auth, form).text)


token_app = typer.Typer(
    help="API tokens of a repository, used with the username __token__.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@token_app.command(name="create")
def create_token(
    repository: RepositoryName,
    scope: Annotated[
        list[str],
        typer.Option("--scope", help="read, upload or yank; repeat it for several."),
    ],
    url: ServerUrl = DEFAULT_URL,
    secret: Secret = None,
    secret_env: SecretEnv = None,
    project: Annotated[
        list[str] | None,
        typer.Option(
            "--project",
            help="Only projects matching this glob may be uploaded "
            "or yanked (repeat it for several); default: every project.",
        ),
    ] = None,
    expires: Annotated[
        str, typer.Option("--expires", help="How long it lasts: 1h, 7d, 2w... or never.")
    ] = "90d",
    note: Annotated[str, typer.Option("--note", help="What it is for, shown in lists.")] = "",
) -> None:
    """Create a token and print it: it is shown this once, and only its hash is kept."""
    parse_lifetime(expires)  # a wrong duration fails here, before the server is asked
    form = {
        "scopes": ",".join(scope),
        "projects": ",".join(project or []),
        "expires": expires,
        "note": note,
    }
    created = call_json("POST", url, "_/tokens", credential(repository, secret, secret_env), form)
    _echo(created["token"])
    _echo(
        f"token {created['id']}: {', '.join(created['scopes'])}"
        f"{' for ' + ', '.join(created['projects']) if created['projects'] else ''}"
        f", expires {created['expires'] or 'never'}",
        err=True,
    )


@token_app.command(name="list")
def list_tokens(
    repository: RepositoryName,
    url: ServerUrl = DEFAULT_URL,
    secret: Secret = None,
    secret_env: SecretEnv = None,
) -> None:
    """List a repository's tokens (never the tokens themselves)."""
    listing = call_json("GET", url, "_/tokens", credential(repository, secret, secret_env))
    for token in listing["tokens"]:
        projects = f" projects={','.join(token['projects'])}" if token["projects"] else ""
        _echo(
            f"{token['id']} scopes={','.join(token['scopes'])}{projects} "
            f"expires={token['expires'] or 'never'} by={token['created_by']!r} "
            f"note={token['note']!r}"
        )


@token_app.command(name="revoke")
def revoke_token(
    token_id: Annotated[str, typer.Argument(help="The token's id, as listed.")],
    repository: RepositoryName,
    url: ServerUrl = DEFAULT_URL,
    secret: Secret = None,
    secret_env: SecretEnv = None,
) -> None:
    """Revoke a token: every server on the store refuses it within one sync interval."""
    auth = credential(repository, secret, secret_env)
    _echo(call("POST", url, "_/tokens/revoke", auth, {"id": token_id}).text)


def _echo(text: str, *, err: bool = False) -> None:
    """Print what a server answered, line by line: its words cannot drive the terminal."""
    for line in text.splitlines():
        typer.echo(printable(line), err=err)


def audit(
    repository: RepositoryName,
    root: Annotated[Path, typer.Option("--root", help="The server's ROOT.")] = Path("."),
    project: Annotated[
        str | None, typer.Option("--project", help="Only this project's events.")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Only events this recent (7d, 12h) or from this date."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the JSON lines.")] = False,
) -> None:
    """Show the audit trail of a repository: every write this server took, who and whence."""
    check_repository_name(repository)
    events = AuditLog(root.resolve()).events(
        repository, project=project, since=_since(since) if since else None
    )
    for event in events:
        typer.echo(json.dumps(event) if as_json else printable(describe(event)))


def _since(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        lifetime = parse_lifetime(text)
        if lifetime is None:
            raise ConfigError("--since takes a duration (7d, 12h) or a date") from None
        return datetime.now(UTC) - lifetime
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
