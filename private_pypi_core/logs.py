"""How the server's log lines read: ``--log_format=text`` (the default: the lines it always
wrote, access lines in Apache's combined format) or ``json`` (one JSON object per line, for
the server's own lines and access lines alike, for log collectors).

Credentials never reach a log line: access lines are built from a request's address, the
repository its credential opened, its path and query string with what looks like a secret
masked (``web.access_log``), never from its headers but the Referer's origin and User-Agent
(masked too).
"""

from __future__ import annotations

import enum
import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, Protocol

TEXT_FORMAT = "%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s"
ACCESS_LOGGER = "gunicorn.access"  # where gunicorn's --accesslog (or --logconfig) sends lines


class LogFormat(enum.StrEnum):
    TEXT = "text"
    JSON = "json"


class AccessFields(Protocol):
    """An access line's content: a log record carries it as ``record.access``."""

    def fields(self) -> dict[str, object]: ...


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line: newlines in a message or a traceback are
    escaped, so a collector never splits a record."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "process": record.process,
        }
        access: AccessFields | None = getattr(record, "access", None)
        if access is not None:
            document.update(access.fields())
        else:
            document["message"] = record.getMessage()
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            document["stack"] = self.formatStack(record.stack_info)
        return json.dumps(document, default=str)


def server_formatter(log_format: LogFormat) -> logging.Formatter:
    return JsonFormatter() if log_format is LogFormat.JSON else logging.Formatter(TEXT_FORMAT)


def configure_logging(log_format: LogFormat, level: int) -> None:
    """The server's own lines (the master's, and the workers' after the fork) to stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(server_formatter(log_format))
    logging.basicConfig(level=level, handlers=[handler])
    logging.captureWarnings(True)  # a warning is a log line too, in the same format


def access_logger() -> logging.Logger | None:
    """The logger of access lines, if gunicorn was told to write them anywhere (--accesslog,
    --logconfig*, --syslog): writing none costs nothing."""
    logger = logging.getLogger(ACCESS_LOGGER)
    return logger if logger.hasHandlers() else None
