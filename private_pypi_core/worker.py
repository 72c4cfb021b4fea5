"""The gunicorn worker class: uvicorn's, with its fast event loop and HTTP parser, and access
logging only when gunicorn's ``--accesslog`` asks for it."""

from __future__ import annotations

from typing import Any, ClassVar

from uvicorn_worker import UvicornWorker


class Worker(UvicornWorker):  # type: ignore[misc]
    # uvloop and httptools when installed (they are dependencies): about twice h11's speed.
    CONFIG_KWARGS: ClassVar[dict[str, Any]] = {"loop": "auto", "http": "auto"}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Formatting a log record per request costs even when nothing is written.
        self.config.access_log = bool(self.cfg.accesslog)
