"""The ``private_pypi`` command line: the core's commands, the plugins' and environment mode.

Environment mode: run with no arguments and ``PRIVATE_PYPI_COMMAND=<command>`` set, and each
``PRIVATE_PYPI_COMMAND_<FLAG>`` variable becomes ``--<flag>`` (``..._ROOT`` fills the ROOT
argument); ``1``/``true``/``yes``/``on`` switch a boolean flag on.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import typer
from typer.core import TyperArgument, TyperGroup, TyperOption

from private_pypi_core.auth_provider import Credential
from private_pypi_core.backend import Access
from private_pypi_core.cache_command import cache_app
from private_pypi_core.config import RepositorySettings, config_from_flags, config_table
from private_pypi_core.errors import (
    ConfigError,
    Forbidden,
    StorageUnavailable,
    UserError,
)
from private_pypi_core.export_command import export
from private_pypi_core.importer import import_dists
from private_pypi_core.logs import LogFormat, configure_logging
from private_pypi_core.manage_commands import audit, secret_from, status, token_app, unyank, yank
from private_pypi_core.metrics import SECRET_VARIABLE, metrics_settings
from private_pypi_core.plugins import plugin_manager
from private_pypi_core.printable import printable
from private_pypi_core.progress import progress_bar
from private_pypi_core.settings import DEFAULT_OIDC_AUDIENCE, ServerSettings
from private_pypi_core.state import (
    EMBEDDED_REPOSITORY,
    Configuration,
    Origin,
    forget_initialized,
    load_configuration,
    remove_leftovers,
    served_config_file,
)

ENV_COMMAND = "PRIVATE_PYPI_COMMAND"
TRUE_WORDS = {"1", "true", "yes", "on"}
EXTRA_ARGS = {"allow_extra_args": True, "ignore_unknown_options": True}

app = typer.Typer(
    name="private_pypi",
    help="A private Python package index on pluggable storage backends.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,  # help as plain paragraphs, wrapped to the terminal
)


def parse_extra_flags(args: list[str]) -> dict[str, str]:
    """``--key=value`` / ``--key value`` pairs left over after the declared flags."""
    flags: dict[str, str] = {}
    rest = list(args)
    while rest:
        arg = rest.pop(0)
        if not arg.startswith("--") or len(arg) == 2:
            raise ConfigError(f"unexpected argument {arg!r}")
        key, sep, value = arg[2:].partition("=")
        if not sep:
            if not rest or rest[0].startswith("--"):
                raise ConfigError(f"flag --{key} needs a value")
            value = rest.pop(0)
        flags[key.replace("-", "_")] = value
    return flags


@app.command(context_settings=EXTRA_ARGS)
def server(
    ctx: typer.Context,
    root: Annotated[
        Path, typer.Argument(help="Folder for the local index, locks, logs and the default store.")
    ],
    config: Annotated[
        str | None, typer.Option("--config", help="Package repository config (TOML).")
    ] = None,
    admin_secret: Annotated[
        str | None,
        typer.Option("--admin_secret", help="Admin secrets (TOML)."),
    ] = None,
    config_or_admin_secret_can_be_text: Annotated[
        bool,
        typer.Option(
            "--config_or_admin_secret_can_be_text",
            "--config-or-admin-secret-can-be-text",
            help="Accept the TOML text itself in --config and --admin_secret.",
        ),
    ] = False,
    auth_read_expires: Annotated[
        int,
        typer.Option("--auth_read_expires", help="Seconds a read auth is cached."),
    ] = 3600,
    auth_write_expires: Annotated[
        int,
        typer.Option(
            "--auth_write_expires", "--auth-write-expires", help="Seconds a write auth is cached."
        ),
    ] = 300,
    extra_index_url: Annotated[
        str,
        typer.Option(
            "--extra_index_url",
            "--extra-index-url",
            help="Where to redirect requests for projects not found; empty: answer 404.",
        ),
    ] = "https://pypi.org/simple/",
    session_max_age: Annotated[
        int,
        typer.Option(
            "--session_max_age",
            help="Seconds a browser session lasts after login, however often it is used.",
        ),
    ] = 8 * 3600,
    url: Annotated[
        str,
        typer.Option(
            "--url",
            help="The server's public URL (e.g. https://pypi.example.com), for absolute URLs "
            "in answers; by default they are paths.",
        ),
    ] = "",
    oidc_audience: Annotated[
        str,
        typer.Option(
            "--oidc_audience",
            help="The audience trusted publishing's ID tokens must name; by default the host "
            f"of --url, else {DEFAULT_OIDC_AUDIENCE!r}.",
        ),
    ] = "",
    debug: Annotated[bool, typer.Option("--debug", help="Log debug messages.")] = False,
    host: Annotated[str, typer.Option("--host", help="The interface to bind to.")] = "0.0.0.0",
    port: Annotated[int, typer.Option("--port", help="The port to bind to.")] = 8888,
    workers: Annotated[int, typer.Option("--workers", help="Worker processes.")] = 2,
    log_format: Annotated[
        LogFormat,
        typer.Option(
            "--log_format",
            help="text: the log lines as always, access lines (--accesslog=-) in Apache's "
            "combined format; json: one JSON object per line, for log collectors.",
        ),
    ] = LogFormat.TEXT,
    metrics: Annotated[
        str,
        typer.Option(
            "--metrics",
            help="Prometheus metrics: off; secret (at /metrics on this port, to requests with "
            "'Authorization: Bearer <--metrics_secret>'); or HOST:PORT (at /metrics on a "
            "listener of its own, without a credential, e.g. 127.0.0.1:9100).",
        ),
    ] = "off",
    metrics_secret: Annotated[
        str,
        typer.Option(
            "--metrics_secret",
            envvar=SECRET_VARIABLE,
            help="The bearer token of --metrics=secret, 16 characters or more; from the "
            "environment, it stays off the command line.",
        ),
    ] = "",
) -> None:
    """Run the package index server.

    Any other --key=value flag is passed to gunicorn as a setting (e.g. --timeout=120,
    --accesslog=-, --certfile=..., --keyfile=..., --worker_connections=1000,
    --forwarded_allow_ips=PROXY), as are ours: --header_timeout=10, --body_timeout=30.
    """
    from private_pypi_core.serve import exec_master, gunicorn_options, listen_for_metrics

    configure_logging(log_format, logging.DEBUG if debug else logging.INFO)
    # In JSON, the lines for people are log lines too: a collector reads every line.
    say: Callable[[str], object] = typer.echo
    if log_format is LogFormat.JSON:
        say = logging.getLogger(__name__).info
    defaults = {
        "bind": f"{host}:{port}",
        "workers": workers,
        "loglevel": "debug" if debug else "info",
        # X-Forwarded-For/-Proto are believed only from a proxy the operator names.
        "forwarded_allow_ips": os.environ.get("FORWARDED_ALLOW_IPS", ""),
    }
    options = gunicorn_options(defaults | parse_extra_flags(ctx.args), log_format)
    root.mkdir(parents=True, exist_ok=True)
    settings = ServerSettings(
        root=root.resolve(),
        config=config,
        admin_secret=admin_secret,
        config_or_admin_secret_can_be_text=config_or_admin_secret_can_be_text,
        auth_read_expires=auth_read_expires,
        auth_write_expires=auth_write_expires,
        extra_index_url=extra_index_url,
        debug=debug,
        session_max_age=session_max_age,
        public_url=_public_url(url),
        # A server's own audience: an ID token sent to another server is no good here.
        oidc_audience=oidc_audience or urlsplit(url).hostname or DEFAULT_OIDC_AUDIENCE,
        metrics=metrics_settings(metrics, metrics_secret, server_port=port),
    )
    if config is not None:
        forget_initialized(settings)
    if leftovers := remove_leftovers(settings):
        say(f"Removed {leftovers} temp files of writes cut short by an earlier crash.")
    configuration = load_configuration(settings)  # fail now, not in every worker
    _sync_before_serving(configuration)
    if configuration.origin is Origin.EMBEDDED:
        _explain_embedded_default(settings, host, port, say)
    metrics_socket = None
    if settings.metrics is not None and settings.metrics.bind is not None:
        metrics_socket = listen_for_metrics(settings.metrics)
    exec_master(settings, options, log_format, metrics_socket)


def _public_url(url: str) -> str:
    if not url:
        return ""
    parsed = urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc or parsed.query:
        raise ConfigError(f"--url must be an http(s) URL such as https://pypi.example.com: {url!r}")
    return url.rstrip("/")


def _sync_before_serving(configuration: Configuration) -> None:
    """Bring every local index up to date before the workers serve from it. A repository
    whose store fails is served from its local index; one never synced has none, and would
    answer every name as unknown (sending clients to the extra index): that stops the start."""
    log = logging.getLogger("private_pypi_core.cli")
    for repository in configuration.repositories.values():
        try:
            repository.sync()
        except (OSError, UserError) as error:
            if not repository.index_mtime():
                cause = error.__cause__ or error
                raise ConfigError(
                    f"package repository {repository.name!r} was never synced and its store "
                    f"cannot be reached ({cause}); there is nothing to serve it from"
                ) from None
            log.warning(
                "repository %s: serving the local index, the remote one failed: %s",
                repository.name,
                error,
            )


def _explain_embedded_default(
    settings: ServerSettings, host: str, port: int, say: Callable[[str], object]
) -> None:
    """How to use the embedded default, as commands that work as printed: the secrets are read
    from their file by the shell, never shown."""
    shown_host = "127.0.0.1" if host in {"0.0.0.0", "::"} else host
    url = f"http://{shown_host}:{port}/simple/"
    name = EMBEDDED_REPOSITORY
    config = shlex.quote(str(settings.embedded_config))

    def read(key: str) -> str:
        table = f'tomllib.load(open(sys.argv[1], "rb"))["{name}"]["{key}"]'
        program = f"import sys, tomllib; print({table})"
        return f"$(python3 -c {shlex.quote(program)} {config})"

    say(
        f"Serving the embedded default: package repository {name!r} on the file system under "
        f"{settings.root / 'cache' / name / 'storage'}.\n"
        f"Its secrets are in {settings.embedded_config} (mode 0600). In a shell:\n"
        f"  READ_SECRET={read('read_secret')}\n"
        f"  WRITE_SECRET={read('write_secret')}\n"
        f'  pip install --index-url "http://{name}:$READ_SECRET@{shown_host}:{port}/simple/" PKG\n'
        f'  twine upload --repository-url {url} -u {name} -p "$WRITE_SECRET" dist/*\n'
        f'  uv publish --publish-url {url} -u {name} -p "$WRITE_SECRET" dist/*'
    )


@app.command(name="update_index", context_settings=EXTRA_ARGS)
def update_index(
    ctx: typer.Context,
    type: Annotated[str, typer.Argument(help="Backend type, e.g. file_system.")],
    name: Annotated[str, typer.Argument(help="Name of the package repository.")],
    secret: Annotated[
        str | None, typer.Option("--secret", help="A secret with write permission.")
    ] = None,
    secret_env: Annotated[
        str | None,
        typer.Option("--secret_env", help="Read the secret from this variable."),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="A config file whose [NAME] table holds the settings."),
    ] = None,
    root: Annotated[
        Path, typer.Option("--root", help="The server's ROOT (for backends that keep data there).")
    ] = Path("."),
) -> None:
    """Rebuild the remote index file of a package repository from what is stored.

    The repository's settings come from its table in --config (by default, the config the
    server under --root serves: its embedded default, or the one posted to /initialize/) and
    from any other --key=value flag, as in the config file (e.g. --storage_path=/srv/packages).
    """
    from private_pypi_core.repository import Repository

    secret = secret_from(secret, secret_env)
    # A store that fails is this command's error, said once on its own line ("Error: ..."),
    # not also the server's outage log line.
    logging.getLogger("private_pypi_core.outages").setLevel(logging.CRITICAL)
    root = root.resolve()
    config = config or served_config_file(root)
    settings = config_table(config, name, type) if config is not None else {}
    repo = config_from_flags(type, name, parse_extra_flags(ctx.args), base=settings)
    refuse_composite(repo, "there is nothing to rebuild")
    with _removed_if_failed(root / "cache"):
        repository = Repository(repo.config, root, admin_secret=secret, auth=repo.auth)
        grant = repository.authenticate(Credential(username=name, secret=secret))
        if grant is None or grant.access is not Access.WRITE:
            source = (
                f"its settings in {config}" if config else "no --config nor server under --root"
            )
            raise Forbidden(
                f"the secret has no write permission on package repository {name!r} ({source})"
            )
        with progress_bar("Indexing", "files") as progress:
            index = repository.rebuild_index(progress=progress)
    typer.echo(f"Indexed {len(index.entries)} files of {len(index.projects)} projects in {name!r}.")


def refuse_composite(repo: RepositorySettings, consequence: str) -> None:
    """``ConfigError`` for a proxy or virtual repository, whose index lists other indexes'
    files, not the files it stores: the ``consequence`` for the command."""
    from private_pypi_core.virtual_backend import VIRTUAL_TYPE

    if repo.proxy is not None or repo.config.type == VIRTUAL_TYPE:
        kind = "proxy" if repo.proxy is not None else "virtual"
        raise ConfigError(
            f"{repo.config.name!r} is a {kind} repository: its index lists other indexes' "
            f"files, not the files it stores, so {consequence}"
        )


@contextlib.contextmanager
def _removed_if_failed(folder: Path) -> Iterator[None]:
    """Remove ``folder`` again if it is new and the block fails: a refused command leaves no
    stray ``./cache/`` behind."""
    existed = folder.exists()
    try:
        yield
    except BaseException:
        if not existed:
            shutil.rmtree(folder, ignore_errors=True)
        raise


app.command(name="export", context_settings=EXTRA_ARGS)(export)
app.command(name="import")(import_dists)

app.command()(yank)
app.command()(unyank)
app.command()(status)
app.add_typer(token_app, name="token")
app.add_typer(cache_app, name="cache")
app.command(name="audit")(audit)


@app.command(name="plugins")
def list_plugins() -> None:
    """List the installed plugins: their versions, backend types, auth providers, commands."""
    from rich.console import Console
    from rich.table import Table

    from private_pypi_core.inventory import installed_plugins

    table = Table("plugin", "distribution", "backends", "auth providers", "commands", "events")
    for plugin in installed_plugins():
        table.add_row(
            plugin.name,
            f"{plugin.distribution} {plugin.version}",
            ", ".join(plugin.backends),
            ", ".join(plugin.auth_providers),
            ", ".join(plugin.commands),
            "index changes" if plugin.listens_to_index_changes else "",
        )
    Console().print(table)


def build_command() -> TyperGroup:
    """The CLI with every installed plugin's commands added, each multi-word flag accepted as
    ``--snake_case`` (the original tool's spelling) and ``--kebab-case`` alike, and arguments
    named in capitals (``ROOT``, ``TYPE NAME``), as the README writes them."""
    plugin_manager().hook.private_pypi_commands(app=app)
    group = typer.main.get_command(app)
    assert isinstance(group, TyperGroup)
    _conventions(group)
    return group


def _conventions(command: Any) -> None:
    if isinstance(command, TyperGroup):
        for subcommand in command.commands.values():
            _conventions(subcommand)
    for param in command.params:
        if isinstance(param, TyperArgument) and param.metavar is None and param.name:
            param.metavar = param.name.upper()
        if isinstance(param, TyperOption):
            for opts in (param.opts, param.secondary_opts):
                for opt in list(opts):
                    for spelling in (opt.replace("_", "-"), "--" + opt[2:].replace("-", "_")):
                        if opt.startswith("--") and spelling not in opts:
                            opts.append(spelling)


def env_argv(group: TyperGroup, environ: dict[str, str]) -> list[str]:
    """The arguments that the ``PRIVATE_PYPI_COMMAND*`` variables spell."""
    name = environ[ENV_COMMAND]
    subcommand = group.get_command(typer.Context(group), name)
    if subcommand is None:
        raise ConfigError(f"{ENV_COMMAND}={name!r} is not a command")
    prefix = f"{ENV_COMMAND}_"
    values = {k[len(prefix) :].lower(): v for k, v in environ.items() if k.startswith(prefix)}
    argv = [name]
    for param in subcommand.params:
        if param.name not in values:
            continue
        value = values.pop(param.name)
        if param.param_type_name == "argument":
            argv.append(value)
        elif getattr(param, "is_flag", False):
            if value.strip().lower() in TRUE_WORDS:
                argv.append(param.opts[0])
        else:
            argv.append(f"{param.opts[0]}={value}")
    argv.extend(f"--{key}={value}" for key, value in values.items())
    return argv


def main() -> None:
    command = build_command()
    args = sys.argv[1:]
    if not args and ENV_COMMAND in os.environ:
        try:
            args = env_argv(command, dict(os.environ))
        except ConfigError as error:
            typer.echo(f"Error: {printable(str(error))}", err=True)
            sys.exit(2)
    try:
        command.main(args=args, prog_name="private_pypi")
    except StorageUnavailable as error:  # the operator's terminal: the cause may be named
        cause = printable(str(error.__cause__ or error))
        typer.echo(f"Error: the package storage failed: {cause}", err=True)
        sys.exit(1)
    except UserError as error:  # its message may quote a server's words, or a file's name
        typer.echo(f"Error: {printable(str(error))}", err=True)
        sys.exit(2)
    except OSError as error:  # a store or a server out of reach: say so, without a traceback
        typer.echo(f"Error: the package storage failed: {printable(str(error))}", err=True)
        sys.exit(1)
