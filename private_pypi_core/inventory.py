"""What is installed: every plugin, the distribution it came from, and what it provides."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import version
from typing import Any

import pluggy
import typer

from private_pypi_core.plugins import plugin_manager

CORE_DISTRIBUTION = "private-pypi-core"


@dataclass(frozen=True)
class InstalledPlugin:
    name: str  # its entry point's name (the core's built-ins: private_pypi_core.*)
    distribution: str
    version: str
    backends: tuple[str, ...]
    auth_providers: tuple[str, ...]
    commands: tuple[str, ...]
    listens_to_index_changes: bool


def installed_plugins() -> list[InstalledPlugin]:
    manager = plugin_manager()
    distributions = {
        id(plugin): (dist.project_name, dist.version)
        for plugin, dist in manager.list_plugin_distinfo()
    }
    plugins = []
    for name, plugin in manager.list_name_plugin():
        distribution = distributions.get(
            id(plugin), (CORE_DISTRIBUTION, version(CORE_DISTRIBUTION))
        )
        plugins.append(
            InstalledPlugin(
                name=name,
                distribution=distribution[0],
                version=distribution[1],
                backends=tuple(cls.type for cls in _provided(manager, plugin, "backends")),
                auth_providers=tuple(
                    cls.name for cls in _provided(manager, plugin, "auth_providers")
                ),
                commands=_commands(manager, plugin),
                listens_to_index_changes=_implements(manager, plugin, "index_changed"),
            )
        )
    return plugins


def _implements(manager: pluggy.PluginManager, plugin: object, hook: str) -> bool:
    implementations = getattr(manager.hook, f"private_pypi_{hook}").get_hookimpls()
    return any(implementation.plugin is plugin for implementation in implementations)


def _provided(manager: pluggy.PluginManager, plugin: object, hook: str) -> list[Any]:
    caller = getattr(manager.hook, f"private_pypi_{hook}")
    for implementation in caller.get_hookimpls():
        if implementation.plugin is plugin:
            return list(implementation.function())
    return []


def _commands(manager: pluggy.PluginManager, plugin: object) -> tuple[str, ...]:
    if not _implements(manager, plugin, "commands"):
        return ()
    app = typer.Typer()
    for implementation in manager.hook.private_pypi_commands.get_hookimpls():
        if implementation.plugin is plugin:
            implementation.function(app=app)
    return tuple(sorted(info.name or "" for info in app.registered_commands))
