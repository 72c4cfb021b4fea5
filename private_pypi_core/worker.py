"""The gunicorn worker class: uvicorn's, with its fast event loop and HTTP parser held to the
connection limits of ``http_limits``, no ``Server`` header, the browser safety headers on every
answer, our access log lines (``web.access_log``) instead of uvicorn's, and the metrics
listener served beside the server's port when there is one."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from uvicorn_worker import UvicornWorker

from private_pypi_core.http_limits import HeadLimits, LimitedHttpProtocol

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


class Worker(UvicornWorker):  # type: ignore[misc]
    sockets: list[Any]  # gunicorn's listeners, served by uvicorn
    CONFIG_KWARGS: ClassVar[dict[str, Any]] = {
        "loop": "auto",  # uvloop when installed (a dependency): about twice asyncio's speed
        # The index serves no WebSocket: an upgrade would hand the connection to a protocol
        # outside our limits.
        "ws": "none",
        "server_header": False,  # naming the server software only helps an attacker pick
        # On every answer, the app's and the protocol's own refusals alike: no page is sniffed
        # as another type, nor framed by another site, nor runs a script or loads anything
        # from elsewhere. One policy for all, here: uvicorn adds these beside the app's own
        # headers, so an app-set policy would be a second one. The web UI needs only its
        # stylesheet and its own forms; a README's images from other sites stay unloaded.
        "headers": [
            ("X-Content-Type-Options", "nosniff"),
            ("X-Frame-Options", "DENY"),
            ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
        ],
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # httptools, about twice h11's speed, with limits on what a client may make us hold.
        self.config.http = LimitedHttpProtocol.with_limits(HeadLimits.from_gunicorn(self.cfg))
        # gunicorn's "maximum number of simultaneous clients"; uvicorn refuses a request once
        # the connections reach its limit, counting the one asking.
        self.config.limit_concurrency = self.cfg.worker_connections + 1
        # uvicorn's access line shows the query string whole, secrets and all: ours replace it.
        self.config.access_log = False
        logging.getLogger("uvicorn.access").handlers = []  # a new list: gunicorn's stays
        # The master bound it before the fork; every worker accepts on it (``web.metrics``).
        metrics_socket = getattr(self.app, "metrics_socket", None)
        if metrics_socket is not None:
            self.sockets = [*self.sockets, metrics_socket]
