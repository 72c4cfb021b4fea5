"""Hosting the app under gunicorn with uvicorn workers, configured from code.

``private_pypi server`` checks everything first (its flags, the configuration, a sync of each
index), then replaces itself (``exec_master``) with a fresh interpreter running ``master``:
the gunicorn master, which imports gunicorn and the worker class, nothing of the command line
(typer, pydantic) nor of the app. Each worker imports and builds the app after the fork
(``load``).

Importing the app in the master instead, to share its pages (gunicorn's preload), measured
idle with two workers: 8 MB less memory in all (PSS), 7 MB more RSS summed over the processes,
the same start. And the first worker then answers while the master still forks the next: a
stop signal arriving then reaches a new worker before it has its own handlers, and the stop
waits out the graceful timeout.
"""

from __future__ import annotations

import contextlib
import json
import logging
import logging.handlers
import os
import socket
import sys
import tempfile
from collections.abc import Mapping
from typing import Any, NoReturn

from gunicorn.app.base import BaseApplication
from gunicorn.config import Config
from gunicorn.glogging import Logger

# Registers our own gunicorn setting, --header_timeout, before any gunicorn Config is made.
import private_pypi_core.http_limits  # noqa: F401
from private_pypi_core import metrics
from private_pypi_core.errors import ConfigError
from private_pypi_core.logs import JsonFormatter, LogFormat, access_logger, configure_logging
from private_pypi_core.metrics import MetricsSettings
from private_pypi_core.settings import ServerSettings, settings_document, settings_from

WORKER_CLASS = "private_pypi_core.worker.Worker"
LOGGER_CLASS = "private_pypi_core.serve.JsonLogger"


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
        checked["logger_class"] = LOGGER_CLASS
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

    def __init__(
        self,
        settings: ServerSettings,
        options: Mapping[str, Any],
        metrics_socket: socket.socket | None = None,
    ) -> None:
        """``options`` come from ``gunicorn_options``; ``metrics_socket`` from
        ``listen_for_metrics``, when the metrics have a listener of their own."""
        self.settings = settings
        self.options = options
        self.metrics_socket = metrics_socket  # each worker serves it (``worker``)
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


def exec_master(
    settings: ServerSettings,
    options: Mapping[str, Any],
    log_format: LogFormat,
    metrics_socket: socket.socket | None,
) -> NoReturn:
    """Replace this process (its pid stays) with the gunicorn master of ``master``, handing it
    what ``PrivatePypiServer`` takes in an unlinked file it inherits: the settings may hold
    secrets, which stay off its command line and environment."""
    document = {
        "settings": settings_document(settings),
        "options": dict(options),
        "log_format": log_format.value,
        "metrics_socket": None if metrics_socket is None else metrics_socket.fileno(),
    }
    with tempfile.TemporaryFile() as handoff:
        handoff.write(json.dumps(document).encode())
        handoff.seek(0)
        os.set_inheritable(handoff.fileno(), True)
        if metrics_socket is not None:
            os.set_inheritable(metrics_socket.fileno(), True)
        sys.stdout.flush()
        sys.stderr.flush()
        master = [sys.executable, "-m", "private_pypi_core.master", str(handoff.fileno())]
        os.execv(sys.executable, master)


def run_master(handoff_fd: int) -> None:
    """Serve as ``exec_master`` asked: the master's side of the handoff."""
    with open(handoff_fd, "rb") as handoff:
        document = json.load(handoff)
    settings = settings_from(document["settings"])
    configure_logging(
        LogFormat(document["log_format"]), logging.DEBUG if settings.debug else logging.INFO
    )
    metrics_socket = None
    if document["metrics_socket"] is not None:
        metrics_socket = socket.socket(fileno=document["metrics_socket"])
        metrics_socket.set_inheritable(False)  # the workers have it by the fork alone
    PrivatePypiServer(settings, document["options"], metrics_socket).run()


def listen_for_metrics(settings: MetricsSettings) -> socket.socket:
    """The metrics listener's socket, bound before the workers fork, so that a port in use
    stops the start, not every worker."""
    assert settings.bind is not None
    host, port = settings.bind
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=128)
    except OSError as error:
        raise ConfigError(
            f"--metrics={settings.address}: cannot listen there: {error.strerror or error}"
        ) from None
