"""Hosting the app under gunicorn with uvicorn workers, configured from code."""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import socket
from collections.abc import Mapping
from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.config import Config
from gunicorn.glogging import Logger

# Registers our own gunicorn setting, --header_timeout, before any gunicorn Config is made.
import private_pypi_core.http_limits  # noqa: F401
from private_pypi_core import metrics
from private_pypi_core.errors import ConfigError
from private_pypi_core.logs import JsonFormatter, LogFormat, access_logger
from private_pypi_core.metrics import MetricsSettings
from private_pypi_core.state import ServerSettings

WORKER_CLASS = "private_pypi_core.worker.Worker"


class JsonLogger(Logger):  # type: ignore[misc]
    """gunicorn's logger, writing its lines, uvicorn's and the access lines as JSON.

    Only the handlers gunicorn makes from its own settings are changed: a --logconfig* of the
    operator's keeps its formats."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for logger in (self.error_log, self.access_log):
            for handler in logger.handlers:
                made_here = getattr(handler, "_gunicorn", False)
                if made_here and not isinstance(handler, logging.handlers.SysLogHandler):
                    handler.setFormatter(JsonFormatter())


def gunicorn_options(
    options: Mapping[str, Any], log_format: LogFormat = LogFormat.TEXT
) -> dict[str, Any]:
    """``options`` checked against gunicorn's settings, with our worker class and defaults."""
    checked = {"worker_class": WORKER_CLASS, **options}
    if log_format is LogFormat.JSON:
        checked["logger_class"] = JsonLogger
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
        # The metrics listener's socket, bound before the workers fork so that each serves it
        # (``worker``), and so that a port in use stops the start, not every worker.
        self.metrics_socket: socket.socket | None = None
        if settings.metrics is not None and settings.metrics.bind is not None:
            self.metrics_socket = _listen(settings.metrics)
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)
        if self.settings.metrics is not None:
            self.cfg.set("child_exit", metrics.forget_worker)

    def load(self) -> Any:
        from private_pypi_core.web.app import serve_app  # imported in the worker, after fork

        return serve_app(self.settings, access_logger())

    def run(self) -> None:
        counting = self.settings.metrics is not None
        with metrics.shared_folder() if counting else contextlib.nullcontext():
            super().run()


def _listen(settings: MetricsSettings) -> socket.socket:
    assert settings.bind is not None
    host, port = settings.bind
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=128)
    except OSError as error:
        raise ConfigError(
            f"--metrics={settings.address}: cannot listen there: {error.strerror or error}"
        ) from None
