"""Which package repositories a server serves, from where, and re-initialisation on the fly.

A server's repositories come from, in this order of precedence:

1. the config last POSTed to ``/initialize/``, kept under ROOT/initialized/;
2. ``--config`` (and ``--admin_secret``) given at start;
3. the embedded default: one file-system repository named ``local`` whose secrets are
   generated once under ROOT/embedded/ (mode 0600).

Starting with ``--config`` forgets an earlier ``/initialize/`` (``forget_initialized``): the
operator's flags win at start, an admin's re-initialisation wins while the server runs.
Every worker process reloads when ROOT/initialized/config.toml is replaced.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, field
from pathlib import Path

import filelock

from private_pypi_core.auth import generate_secret
from private_pypi_core.config import (
    AdminSecret,
    RepositorySettings,
    TomlSource,
    add_tables,
    check_anonymous,
    load_admin_secrets,
    load_repositories,
    parse_toml,
    read_toml,
)
from private_pypi_core.errors import ConfigError, Forbidden, Unauthorized
from private_pypi_core.files import (
    FileVersion,
    atomic_write,
    file_version,
    remove_stale_temp_files,
)
from private_pypi_core.proxy.repository import ProxyRepository
from private_pypi_core.repository import Repository

# Light enough for the gunicorn master on its own; the rest of the core imports it from here.
from private_pypi_core.settings import ServerSettings as ServerSettings
from private_pypi_core.virtual import VirtualRepository
from private_pypi_core.virtual_backend import VIRTUAL_TYPE

log = logging.getLogger(__name__)

ADMIN_NEEDED = (
    "Re-initialising this server needs an admin credential: HTTP basic auth with a "
    "repository name from the admin secret file and its secret."
)
EMBEDDED_REPOSITORY = "local"
EMBEDDED_TYPE = "file_system"


class Origin(enum.Enum):
    FLAGS = "the --config flag"
    INITIALIZED = "POST /initialize/"
    EMBEDDED = "the embedded default"


@dataclass
class Configuration:
    origin: Origin
    repositories: dict[str, Repository]
    admin_secrets: dict[str, AdminSecret] = field(repr=False)
    root: Path

    def anonymous_repository(self) -> Repository | None:
        """The repository requests without a credential read: the first with
        ``anonymous_read``, if any."""
        return next((r for r in self.repositories.values() if r.config.anonymous_read), None)

    def is_pristine_default(self) -> bool:
        """Started on the embedded default, never initialised, no package stored yet, and no
        other repository's data under ROOT (left by an earlier run with another config, which
        an anonymous config could otherwise claim by naming that repository)."""
        if self.origin is not Origin.EMBEDDED:
            return False
        repository = self.repositories[EMBEDDED_REPOSITORY]
        if repository.index.entries or any(repository.backend.list_files()):
            return False
        return all(path.name == EMBEDDED_REPOSITORY for path in (self.root / "cache").iterdir())


def ensure_embedded_default(settings: ServerSettings) -> bool:
    """Create the embedded default's config and secrets if missing; return whether it did."""
    if settings.embedded_config.exists():
        return False
    write_secret = generate_secret()
    table = {"type": EMBEDDED_TYPE, "read_secret": generate_secret(), "write_secret": write_secret}
    add_tables(
        {
            settings.embedded_config: (EMBEDDED_REPOSITORY, table),
            settings.embedded_admin_secret: (
                EMBEDDED_REPOSITORY,
                {"type": EMBEDDED_TYPE, "raw": write_secret},
            ),
        }
    )
    return True


def load_configuration(settings: ServerSettings) -> Configuration:
    """The repositories and admin secrets this server serves now (see the module doc)."""
    if settings.initialized_config.exists():
        return _configuration(
            Origin.INITIALIZED,
            read_toml(str(settings.initialized_config), what="config"),
            read_toml(str(settings.initialized_admin_secret), what="admin secret"),
            settings.root,
        )
    if settings.config is not None:
        text_ok = settings.config_or_admin_secret_can_be_text
        config = read_toml(settings.config, what="config", can_be_text=text_ok)
        admin = (
            read_toml(settings.admin_secret, what="admin secret", can_be_text=text_ok)
            if settings.admin_secret is not None
            else TomlSource(label="no admin secret", data={})
        )
        return _configuration(Origin.FLAGS, config, admin, settings.root)
    ensure_embedded_default(settings)
    return _configuration(
        Origin.EMBEDDED,
        read_toml(str(settings.embedded_config), what="config"),
        read_toml(str(settings.embedded_admin_secret), what="admin secret"),
        settings.root,
    )


def served_config_file(root: Path) -> Path | None:
    """The config a server on ``root`` started without ``--config`` serves (the one posted to
    ``/initialize/``, else the embedded default's), if there is one; nothing is created."""
    settings = ServerSettings(root=root)
    for path in (settings.initialized_config, settings.embedded_config):
        if path.exists():
            return path
    return None


def remove_leftovers(settings: ServerSettings) -> int:
    """Remove the temp files of uploads and index writes that a crash cut short; call it
    before the workers start. Returns how many there were."""
    patterns = ["tmp/*", "*/.*.tmp", "cache/*/.*.tmp", "cache/*/index-parts/.*.tmp"]
    patterns.append("cache/*/upstream/.*.tmp")  # a proxy's records of pages fetched
    patterns.append("cache/*/storage/.*.tmp")
    patterns.append("cache/*/storage/*/.*.tmp")  # the fs backend's default store under ROOT
    return sum(len(remove_stale_temp_files(settings.root, pattern)) for pattern in patterns)


def forget_initialized(settings: ServerSettings) -> None:
    """Drop a configuration posted to ``/initialize/`` by an earlier run of the server."""
    settings.initialized_config.unlink(missing_ok=True)
    settings.initialized_admin_secret.unlink(missing_ok=True)


def initialize(
    settings: ServerSettings, config_text: str, admin_secret_text: str, *, anonymous: bool
) -> Configuration:
    """Check a new config and admin secret, then make them every worker's configuration.

    An ``anonymous`` one (posted without a credential) is taken only while the server is
    pristine, and may not choose where anything is stored (``check_anonymous``).
    """
    config = parse_toml(config_text, label="the posted config")
    admin = parse_toml(admin_secret_text, label="the posted admin secret")
    with filelock.FileLock(settings.root / "initialize.lock"):
        if anonymous:
            if not load_configuration(settings).is_pristine_default():
                raise Unauthorized(ADMIN_NEEDED)
            try:
                check_anonymous(config, admin)
            except ConfigError as error:
                raise Forbidden(str(error)) from None
        configuration = _configuration(Origin.INITIALIZED, config, admin, settings.root)
        # The admin secret first: a worker reloads when the config file changes.
        atomic_write(settings.initialized_admin_secret, admin_secret_text.encode(), mode=0o600)
        atomic_write(settings.initialized_config, config_text.encode(), mode=0o600)
    return configuration


def open_repository(
    settings: RepositorySettings, root: Path, admin_secret: str | None
) -> Repository:
    """The repository of ``settings``: a proxy with a ``proxy`` table, a virtual repository
    of type ``virtual`` (its members attached later), else one holding its own files."""
    if settings.proxy is not None:
        return ProxyRepository(
            settings.config, root, settings.proxy, admin_secret=admin_secret, auth=settings.auth
        )
    kind = VirtualRepository if settings.config.type == VIRTUAL_TYPE else Repository
    return kind(settings.config, root, admin_secret=admin_secret, auth=settings.auth)


def config_generation(settings: ServerSettings) -> FileVersion | None:
    """Changes whenever ``/initialize/`` replaced the config; ``None`` if it never did."""
    return file_version(settings.initialized_config)


def _configuration(
    origin: Origin, config: TomlSource, admin: TomlSource, root: Path
) -> Configuration:
    settings = load_repositories(config)
    admin_secrets = load_admin_secrets(admin)
    for name, secret in admin_secrets.items():
        if name not in settings:
            raise ConfigError(f"{admin.label}: repository [{name}] is not in {config.label}")
        if secret.type != settings[name].config.type:
            raise ConfigError(
                f"{admin.label}: repository [{name}] has type {secret.type!r}, "
                f"but {config.label} says {settings[name].config.type!r}"
            )
    repositories = {}
    for name, repository in settings.items():
        admin_secret = admin_secrets[name].secret if name in admin_secrets else None
        try:
            repositories[name] = open_repository(repository, root, admin_secret)
        except OSError as error:
            raise ConfigError(
                f"{config.label}: repository [{name}]: its storage cannot be used: {error}"
            ) from None
    for opened in repositories.values():
        if isinstance(opened, VirtualRepository):
            try:
                opened.attach(repositories)
            except ConfigError as error:
                raise ConfigError(f"{config.label}: {error}") from None
    return Configuration(
        origin=origin, repositories=repositories, admin_secrets=admin_secrets, root=root
    )
