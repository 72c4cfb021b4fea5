"""Hosting the app under gunicorn with uvicorn workers, configured from code."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.config import Config

# Registers our own gunicorn setting, --header_timeout, before any gunicorn Config is made.
import private_pypi_core.http_limits  # noqa: F401
from private_pypi_core.errors import ConfigError
from private_pypi_core.state import ServerSettings

WORKER_CLASS = "private_pypi_core.worker.Worker"


def gunicorn_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` checked against gunicorn's settings, with our worker class and defaults."""
    checked = {"worker_class": WORKER_CLASS, **options}
    config = Config()
    for key, value in checked.items():
        if key not in config.settings:
            raise ConfigError(f"unknown gunicorn setting {key!r}")
        try:
            config.set(key, value)
        except (TypeError, ValueError) as error:
            raise ConfigError(f"gunicorn setting {key!r}: {error}") from None
    if "control_socket_disable" in config.settings:
        # The control socket defaults to one path per user: two servers would clash.
        checked.setdefault("control_socket_disable", True)
    return checked


class PrivatePypiServer(BaseApplication):  # type: ignore[misc]
    """A gunicorn application whose workers each build their own app after the fork."""

    def __init__(self, settings: ServerSettings, options: Mapping[str, Any]) -> None:
        """``options`` come from ``gunicorn_options``."""
        self.settings = settings
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from private_pypi_core.web.app import create_app  # imported in the worker, after fork

        return create_app(self.settings)
