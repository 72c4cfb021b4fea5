"""Watching each HTTP request a worker answers, for its access log line and its metrics.

``Watched`` wraps the whole ASGI app, so it sees what the client got: the status, the body's
bytes (streamed downloads included) and the time to the last byte. ``Annotate``, a Falcon
middleware, tells it what only the app knows: the route template the request matched (a
bounded label, where the path is not) and the repository its credential opened.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import falcon.asgi

from private_pypi_core import metrics
from private_pypi_core.auth import ANONYMOUS_GRANT
from private_pypi_core.web.access_log import AccessEntry, access_entry

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Mapping[str, Any]]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

NOTES = "private_pypi.notes"  # the scope key of a request's ``Notes``
UNMATCHED = "unmatched"  # the route of a request no route matched


@dataclass(slots=True)
class Notes:
    route: str = UNMATCHED
    user: str = "-"


class Annotate:
    """Fills in the ``Notes`` of a watched request once the app has answered it."""

    async def process_response(
        self,
        req: falcon.asgi.Request,
        resp: falcon.asgi.Response,
        resource: Any,
        req_succeeded: bool,
    ) -> None:
        notes = req.scope.get(NOTES)
        if notes is None:
            return  # nobody watches
        notes.route = req.uri_template or req.context.get("route", UNMATCHED)
        grant = req.context.get("grant")
        if grant is not None and grant is not ANONYMOUS_GRANT:
            notes.user = req.context.repository.name


class Watched:
    """The ASGI app, with an access log line (when ``access_log`` is given) and metrics (when
    ``count``) for each HTTP request."""

    def __init__(self, app: ASGIApp, *, access_log: logging.Logger | None, count: bool) -> None:
        self.app = app
        self.access_log = access_log
        self.count = count

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        notes = scope[NOTES] = Notes()
        arrived, started = time.time(), time.perf_counter()
        status = sent = 0

        async def watched_send(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, watched_send)
        finally:
            seconds = time.perf_counter() - started
            status = status or 500  # the app failed before answering: uvicorn answers 500
            if self.count:
                metrics.record_request(notes.route, scope["method"], status, seconds, sent)
            if self.access_log is not None:
                self._log(access_entry(scope, notes.user, arrived, status, sent, seconds))

    def _log(self, entry: AccessEntry) -> None:
        """``access_log.info(entry)``, with the entry as ``record.access`` for the JSON format;
        made by hand, as ``info`` would look for its caller up the stack on every request."""
        assert self.access_log is not None
        record = logging.LogRecord(
            self.access_log.name, logging.INFO, __file__, 0, "%s", (entry,), None
        )
        record.access = entry
        self.access_log.handle(record)
