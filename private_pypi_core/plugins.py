"""The plugin manager: loads the installed plugins and answers which backend serves a type."""

from __future__ import annotations

from functools import cache

import pluggy

from private_pypi_core import hookspecs
from private_pypi_core.backend import Backend
from private_pypi_core.errors import ConfigError


@cache
def plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, with every installed plugin loaded."""
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    manager.load_setuptools_entrypoints(hookspecs.PROJECT_NAME)
    return manager


def installed_backends() -> dict[str, type[Backend]]:
    """Backend classes by their ``type`` name."""
    backends: dict[str, type[Backend]] = {}
    for provided in plugin_manager().hook.private_pypi_backends():
        for backend_class in provided:
            if backend_class.type in backends:
                raise ConfigError(
                    f"two plugins provide the backend type {backend_class.type!r}: "
                    f"{backends[backend_class.type].__module__} and {backend_class.__module__}"
                )
            backends[backend_class.type] = backend_class
    return backends


def backend_class(type_name: str) -> type[Backend]:
    """The backend class serving ``type_name``, or a ``ConfigError`` naming the installed ones."""
    backends = installed_backends()
    try:
        return backends[type_name]
    except KeyError:
        installed = ", ".join(sorted(backends)) or "none"
        raise ConfigError(
            f"unknown backend type {type_name!r} (installed backends: {installed})"
        ) from None
