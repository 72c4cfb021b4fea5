"""The plugin manager: loads the installed plugins (the core's own built-ins first) and answers
which backend serves a type and which auth provider has a name."""

from __future__ import annotations

from functools import cache
from typing import TypeVar

import pluggy

from private_pypi_core import hookspecs, secrets_provider, tokens, virtual_backend
from private_pypi_core.auth_provider import AuthProvider
from private_pypi_core.backend import Backend
from private_pypi_core.errors import ConfigError

T = TypeVar("T")


@cache
def plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, with every installed plugin loaded."""
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    manager.register(secrets_provider, name="private_pypi_core.secrets")
    manager.register(tokens, name="private_pypi_core.tokens")
    manager.register(virtual_backend, name="private_pypi_core.virtual")
    manager.load_setuptools_entrypoints(hookspecs.PROJECT_NAME)
    return manager


def installed_backends() -> dict[str, type[Backend]]:
    """Backend classes by their ``type`` name."""
    return _by_name(plugin_manager().hook.private_pypi_backends(), "type", "backend type")


def installed_auth_providers() -> dict[str, type[AuthProvider]]:
    """Auth provider classes by their ``name``."""
    return _by_name(plugin_manager().hook.private_pypi_auth_providers(), "name", "auth provider")


def backend_class(type_name: str) -> type[Backend]:
    """The backend class serving ``type_name``, or a ``ConfigError`` naming the installed ones."""
    return _lookup(installed_backends(), type_name, "backend type", "installed backends")


def auth_provider_class(name: str) -> type[AuthProvider]:
    """The auth provider named ``name``, or a ``ConfigError`` naming the installed ones."""
    return _lookup(installed_auth_providers(), name, "auth provider", "installed auth providers")


def _by_name(provided: list[list[type[T]]], attribute: str, what: str) -> dict[str, type[T]]:
    classes: dict[str, type[T]] = {}
    for plugin_classes in provided:
        for cls in plugin_classes:
            name = getattr(cls, attribute)
            if name in classes:
                raise ConfigError(
                    f"two plugins provide the {what} {name!r}: "
                    f"{classes[name].__module__} and {cls.__module__}"
                )
            classes[name] = cls
    return classes


def _lookup(classes: dict[str, type[T]], name: str, what: str, installed: str) -> type[T]:
    try:
        return classes[name]
    except KeyError:
        names = ", ".join(sorted(classes)) or "none"
        raise ConfigError(f"unknown {what} {name!r} ({installed}: {names})") from None
