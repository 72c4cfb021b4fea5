"""Hosting the app under gunicorn with uvicorn workers, configured from code."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gunicorn.app.base import BaseApplication

from private_pypi_core.errors import ConfigError
from private_pypi_core.state import ServerSettings

WORKER_CLASS = "uvicorn_worker.UvicornWorker"


class PrivatePypiServer(BaseApplication):  # type: ignore[misc]
    """A gunicorn application whose workers each build their own app after the fork."""

    def __init__(self, settings: ServerSettings, options: Mapping[str, Any]) -> None:
        self.settings = settings
        self.options = {"worker_class": WORKER_CLASS, **options}
        super().__init__()

    def load_config(self) -> None:
        if "control_socket_disable" in self.cfg.settings:
            # The control socket defaults to one path per user: two servers would clash.
            self.cfg.set("control_socket_disable", True)
        for key, value in self.options.items():
            if key not in self.cfg.settings:
                raise ConfigError(f"unknown gunicorn setting {key!r}")
            try:
                self.cfg.set(key, value)
            except (TypeError, ValueError) as error:
                raise ConfigError(f"gunicorn setting {key!r}: {error}") from None

    def load(self) -> Any:
        from private_pypi_core.web.app import create_app  # imported in the worker, after fork

        return create_app(self.settings)
