"""Loading the package repository config and the admin secret (both TOML) with clear errors.

The config maps each package repository name to its backend settings::

    [local-file-system]
    type = "file_system"
    read_secret = "foo"
    write_secret = "bar"

The admin secret gives, per repository, the secret with write permission the server uses for
itself (index sync) and that lets its holder re-initialise the server::

    [local-file-system]
    type = "file_system"
    raw = "bar"          # or: env = "NAME_OF_AN_ENVIRONMENT_VARIABLE"

Fields are validated against the backend's config dataclass. A small validator is written
here rather than taken from a library because the fields are plain scalars and every error
must name the file, the repository and the key.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

import tomli_w

from private_pypi_core.auth_provider import ProviderSettings
from private_pypi_core.backend import BackendConfig, check_repository_name
from private_pypi_core.errors import ConfigError
from private_pypi_core.files import atomic_write
from private_pypi_core.oidc import trusted_publishers
from private_pypi_core.plugins import auth_provider_class, backend_class
from private_pypi_core.proxy.settings import ProxySettings
from private_pypi_core.virtual_backend import VIRTUAL_TYPE

CORE_KEYS = frozenset({"name", "type"})
PROXY_KEY = "proxy"  # the [<repository>.proxy] table: the repository mirrors an upstream
T = TypeVar("T")


@dataclass(frozen=True)
class TomlSource:
    """A parsed TOML document and how to name it in messages."""

    label: str
    data: dict[str, Any]


@dataclass(frozen=True)
class AdminSecret:
    """The write secret of one repository, as the server itself uses it."""

    name: str
    type: str
    secret: str = field(repr=False)


def read_toml(value: str, *, what: str, can_be_text: bool = False) -> TomlSource:
    """Parse ``value``, a path to a TOML file (or the TOML text itself when allowed).

    The value is never quoted in an error: it may be TOML text holding secrets.
    """
    if _is_file(value):
        path = Path(value)
        return parse_toml(path.read_text(encoding="utf-8"), label=str(path))
    if can_be_text:
        return parse_toml(value, label=f"the {what} text")
    shown = f" {value!r}" if _looks_like_path(value) else ""
    raise ConfigError(
        f"the {what} file{shown} does not exist "
        "(to pass the TOML text itself, add --config_or_admin_secret_can_be_text)"
    )


def _is_file(value: str) -> bool:
    try:
        return Path(value).is_file()
    except (OSError, ValueError):  # too long, or a NUL: TOML text, not a path
        return False


def _looks_like_path(value: str) -> bool:
    return len(value) < 256 and not any(c in value for c in '\n="')


def parse_toml(text: str, *, label: str) -> TomlSource:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{label}: not valid TOML: {error}") from None
    return TomlSource(label=label, data=data)


@dataclass(frozen=True)
class RepositorySettings:
    """One repository's settings: its backend's, those of each of its auth providers, and
    its upstream's when it is a proxy."""

    config: BackendConfig
    auth: dict[str, ProviderSettings]
    proxy: ProxySettings | None = None


def load_repositories(source: TomlSource) -> dict[str, RepositorySettings]:
    """Every repository of a config document, validated against its backend's settings and
    its auth providers'."""
    if not source.data:
        raise ConfigError(f"{source.label}: no package repository is configured")
    return {
        name: repository_settings(name, _table(source, name), label=source.label)
        for name in source.data
    }


def repository_settings(name: str, table: Mapping[str, Any], *, label: str) -> RepositorySettings:
    config = repository_config(name, table, label=label)
    where = f"{label}: repository [{name}]"
    auth = {}
    for provider in config.auth or backend_class(config.type).default_auth:
        try:
            settings_class = auth_provider_class(provider).settings_class
        except ConfigError as error:
            raise ConfigError(f"{where}: {error}") from None
        values = table.get(provider, {})
        auth[provider] = build_config(settings_class, values, where=f"{label}: [{name}.{provider}]")
    proxy = table.get(PROXY_KEY)
    if proxy is not None and not isinstance(proxy, dict):
        raise ConfigError(f"{where}: {PROXY_KEY!r} must be a table ([{name}.{PROXY_KEY}])")
    if proxy is not None and config.type == VIRTUAL_TYPE:
        raise ConfigError(
            f"{where}: a virtual repository mirrors nothing itself: no [{name}.proxy]"
        )
    return RepositorySettings(
        config=config,
        auth=auth,
        proxy=build_config(ProxySettings, proxy, where=f"{label}: [{name}.{PROXY_KEY}]")
        if proxy is not None
        else None,
    )


def repository_config(name: str, table: Mapping[str, Any], *, label: str) -> BackendConfig:
    """One repository's settings as its backend's config dataclass."""
    try:
        check_repository_name(name)
    except ConfigError as error:
        raise ConfigError(f"{label}: {error}") from None
    where = f"{label}: repository [{name}]"
    type_name = table.get("type")
    if not isinstance(type_name, str):
        raise ConfigError(f"{where}: missing key 'type' (a string naming the backend)")
    try:
        config_class = backend_class(type_name).config_class
    except ConfigError as error:
        raise ConfigError(f"{where}: {error}") from None
    tables = provider_tables(table) | {PROXY_KEY}
    values = {key: value for key, value in table.items() if key not in tables}
    config = build_config(config_class, {**values, "name": name}, where=where)
    try:
        trusted_publishers(config)
    except ConfigError as error:
        raise ConfigError(f"{where}: {error}") from None
    return config


def provider_tables(table: Mapping[str, Any]) -> set[str]:
    """The keys of a repository's table that hold an auth provider's settings: the tables
    named after a provider of its ``auth`` list."""
    auth = table.get("auth")
    if not isinstance(auth, list):
        return set()
    return {key for key in auth if isinstance(key, str) and isinstance(table.get(key), dict)}


def build_config(config_class: type[T], values: Mapping[str, Any], *, where: str) -> T:
    """Instantiate the dataclass ``config_class`` from ``values``, checking keys and scalar
    types."""
    fields = {f.name: f for f in dataclasses.fields(cast(Any, config_class))}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        known = ", ".join(sorted(set(fields) - CORE_KEYS))
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (known keys: {known})")
    hints = typing.get_type_hints(config_class)
    for name, spec in fields.items():
        if name not in values:
            if spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{where}: missing key {name!r}")
            continue
        expected = hints[name]
        if not _matches(values[name], expected):
            raise ConfigError(
                f"{where}: key {name!r} must be {_describe(expected)}, got {values[name]!r}"
                if name not in _secret_fields(config_class)
                else f"{where}: key {name!r} must be {_describe(expected)}"
            )
    try:
        return config_class(**values)
    except ConfigError as error:  # a backend's own checks (__post_init__)
        raise ConfigError(f"{where}: {error}") from None


def load_admin_secrets(source: TomlSource) -> dict[str, AdminSecret]:
    """The admin secrets by repository name; ``env`` entries are read from the environment."""
    secrets = {}
    for name in source.data:
        table = _table(source, name)
        try:
            check_repository_name(name)
        except ConfigError as error:
            raise ConfigError(f"{source.label}: {error}") from None
        where = f"{source.label}: repository [{name}]"
        type_name = table.get("type")
        if not isinstance(type_name, str):
            raise ConfigError(f"{where}: missing key 'type' (a string naming the backend)")
        if isinstance(table.get("raw"), str):
            secret = table["raw"]
        elif isinstance(table.get("env"), str):
            secret = os.environ.get(table["env"], "")
            if not secret:
                raise ConfigError(f"{where}: environment variable {table['env']!r} is not set")
        else:
            raise ConfigError(f"{where}: needs key 'raw' (the secret) or 'env' (a variable name)")
        secrets[name] = AdminSecret(name=name, type=type_name, secret=secret)
    return secrets


def check_anonymous(config: TomlSource, admin: TomlSource) -> None:
    """``ConfigError`` unless every key of ``config`` and ``admin`` may be set without a
    credential: nothing that names a place outside ROOT (see ``BackendConfig.anonymous_keys``).
    Checked on the TOML documents, before any repository touches storage."""
    for name in config.data:
        table = _table(config, name)
        type_name = table.get("type")
        if not isinstance(type_name, str):
            continue  # the full check names the missing type
        try:
            config_class = backend_class(type_name).config_class
        except ConfigError:
            continue  # the full check names the unknown type
        known = {f.name for f in dataclasses.fields(config_class)}
        refused = (set(table) & known) - config_class.anonymous_keys
        _refuse_keys(config.label, name, refused | ({PROXY_KEY} & set(table)))
        for provider in provider_tables(table):
            try:
                allowed = auth_provider_class(provider).settings_class.anonymous_keys
            except ConfigError:
                continue  # the full check names the unknown provider
            _refuse_keys(config.label, f"{name}.{provider}", set(table[provider]) - allowed)
    for name in admin.data:
        _refuse_keys(admin.label, name, set(_table(admin, name)) - {"type", "raw"})


def _refuse_keys(label: str, name: str, keys: set[str]) -> None:
    if keys:
        raise ConfigError(
            f"{label}: repository [{name}]: key {sorted(keys)[0]!r} needs an admin credential: "
            "a configuration posted without one may not choose a path, an address the server "
            "connects to or an environment variable; its repositories are stored under ROOT"
        )


def _table(source: TomlSource, name: str) -> Mapping[str, Any]:
    table = source.data[name]
    if not isinstance(table, dict):
        raise ConfigError(f"{source.label}: {name!r} must be a table ([{name}])")
    return table


def _secret_fields(config_class: type[Any]) -> set[str]:
    return {f.name for f in dataclasses.fields(config_class) if not f.repr}


def _matches(value: object, expected: Any) -> bool:
    if isinstance(expected, types.UnionType) or typing.get_origin(expected) is typing.Union:
        return any(_matches(value, option) for option in typing.get_args(expected))
    if expected is type(None):
        return value is None
    origin, args = typing.get_origin(expected), typing.get_args(expected)
    if origin is dict:
        return isinstance(value, dict) and all(
            _matches(k, args[0]) and _matches(v, args[1]) for k, v in value.items()
        )
    if origin is list:
        return isinstance(value, list) and all(_matches(item, args[0]) for item in value)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if expected is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, expected)


def _describe(expected: Any) -> str:
    if isinstance(expected, types.UnionType):
        return " or ".join(_describe(option) for option in typing.get_args(expected))
    if typing.get_origin(expected) is dict:
        key, value = typing.get_args(expected)
        return f"a table of {_describe(key)} to {_describe(value)}"
    if typing.get_origin(expected) is list:
        return f"a list of {_describe(typing.get_args(expected)[0])}"
    names = {int: "an integer", str: "a string", bool: "true or false", float: "a number"}
    return names.get(expected, getattr(expected, "__name__", str(expected)))


def add_tables(additions: Mapping[Path, tuple[str, Mapping[str, Any]]]) -> None:
    """Add a ``[name]`` table to each TOML file (created, mode 0600: they hold secrets).

    Every file is checked before any is written, so a clash leaves all of them unchanged.
    """
    documents = {}
    for path, (name, table) in additions.items():
        check_repository_name(name)
        existing = read_toml(str(path), what="config").data if path.exists() else {}
        if name in existing:
            raise ConfigError(f"{path}: repository [{name}] already exists")
        documents[path] = {**existing, name: dict(table)}
    for path, document in documents.items():
        atomic_write(path, tomli_w.dumps(document).encode(), mode=0o600)


def config_table(path: Path, name: str, type_name: str) -> dict[str, Any]:
    """The ``[name]`` table of a config file, which must be of backend ``type_name``."""
    source = read_toml(str(path), what="config")
    if name not in source.data:
        raise ConfigError(f"{source.label}: no repository [{name}]")
    table = dict(_table(source, name))
    if table.get("type") != type_name:
        raise ConfigError(
            f"{source.label}: repository [{name}] has type {table.get('type')!r}, not {type_name!r}"
        )
    return table


def config_from_flags(
    type_name: str, name: str, flags: Mapping[str, str], *, base: Mapping[str, Any]
) -> RepositorySettings:
    """A repository's settings: ``base`` (its table in a config file) updated by command-line
    flags (strings, converted to the field types)."""
    check_repository_name(name)
    hints = typing.get_type_hints(backend_class(type_name).config_class)
    where = f"repository {name!r} from the command line"
    values: dict[str, Any] = {**base, "type": type_name}
    for key, text in flags.items():
        values[key] = _from_text(text, hints.get(key), key=key, where=where)
    return repository_settings(name, values, label="the command line")


def _from_text(text: str, expected: Any, *, key: str, where: str) -> Any:
    options = typing.get_args(expected) if isinstance(expected, types.UnionType) else (expected,)
    if bool in options:
        return text.strip().lower() in {"1", "true", "yes", "on"}
    if int in options:
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f"{where}: --{key} must be an integer, got {text!r}") from None
    return text
