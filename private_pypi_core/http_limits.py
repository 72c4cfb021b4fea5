"""What one client connection may cost a worker, and the HTTP protocol that holds it to that.

uvicorn's httptools protocol keeps a request head of any size in memory and waits for it
forever. This protocol, a subclass of it, answers before the app runs and closes the connection:

- ``414`` for a request target over gunicorn's ``limit_request_line`` (4094 bytes);
- ``431`` for more than ``limit_request_fields`` header fields (100), a field over
  ``limit_request_field_size`` (8190 bytes, name and value), or a whole head (request line and
  fields) over ``limit_request_line + limit_request_field_size + HEAD_ROOM`` (16,380 bytes);
- ``408`` for a head still unfinished ``header_timeout`` seconds (10) after the connection
  opened, or after its first byte on a kept-alive connection (idle, such a connection is closed
  after gunicorn's ``keepalive``);
- a closed connection for a request body that stops arriving for ``body_timeout`` seconds (30)
  while the server is ready to read it (a body promised by Content-Length but never sent would
  otherwise hold the connection and its request for ever, before any credential is checked);
- ``503`` for a connection beyond gunicorn's ``worker_connections`` (1000) in one worker.

A worker thus holds at most ``worker_connections`` unfinished heads of that size, none longer
than the header timeout. ``header_timeout`` and ``body_timeout`` are gunicorn settings of ours,
registered with gunicorn when this module is imported.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, ClassVar, cast

import httptools
from gunicorn.config import Setting, validate_pos_int
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

HEAD_ROOM = 4096
"""Bytes of a head beside its longest request line and longest field: pip's whole head is about
600 bytes, a proxy adds a few hundred. With gunicorn's defaults a head is capped at 16,380 bytes,
so a worker's 1000 connections hold 16 MiB of heads at most."""

HEADER_TIMEOUT = 10
"""Seconds for a whole request head: clients send it in one write, so 10 s is ample even on a
slow link, and a connection sending a byte now and then is closed in 10 s, not kept forever."""

BODY_TIMEOUT = 30
"""Seconds a request body may pause while the server waits for it: a client that stalls longer
has lost its network or is holding the connection on purpose."""

# gunicorn's own ceilings, used when a setting is 0 ("no limit" in gunicorn's words).
GUNICORN_MAX_REQUEST_LINE = 8190
GUNICORN_MAX_FIELDS = 32768
GUNICORN_MAX_FIELD_SIZE = 8190


class HeaderTimeout(Setting):  # type: ignore[misc]
    """``--header_timeout=SECONDS``: defining the class registers it with gunicorn."""

    name = "header_timeout"
    section = "Security"
    cli: ClassVar[list[str]] = ["--header-timeout"]
    meta = "INT"
    validator = validate_pos_int
    type = int
    default = HEADER_TIMEOUT
    desc = """\
        Seconds a client has to send a whole request head (0: no limit).

        Counted from the connection opening, or on a kept-alive connection from the first
        byte of the next request. A connection still sending its head is then answered 408
        and closed.
        """


class BodyTimeout(Setting):  # type: ignore[misc]
    """``--body_timeout=SECONDS``: defining the class registers it with gunicorn."""

    name = "body_timeout"
    section = "Security"
    cli: ClassVar[list[str]] = ["--body-timeout"]
    meta = "INT"
    validator = validate_pos_int
    type = int
    default = BODY_TIMEOUT
    desc = """\
        Seconds a request body may stop arriving while the server waits for it (0: no limit).

        The connection is then closed, and the request with it.
        """


@dataclass(frozen=True)
class HeadLimits:
    """How large a request head may be, and how long it may take to arrive."""

    line_bytes: int = 4094
    fields: int = 100
    field_bytes: int = 8190
    timeout: float = HEADER_TIMEOUT
    body_timeout: float = BODY_TIMEOUT

    @property
    def head_bytes(self) -> int:
        """The whole head: the longest line and the longest field fit at once, with room."""
        return self.line_bytes + self.field_bytes + HEAD_ROOM

    @property
    def part_bytes(self) -> int:
        """A head no longer than this has no part too long."""
        return min(self.line_bytes, self.field_bytes)

    @classmethod
    def from_gunicorn(cls, cfg: Any) -> HeadLimits:
        """The limits that gunicorn's settings ``cfg`` name, with gunicorn's ceilings for 0."""
        return cls(
            line_bytes=cfg.limit_request_line or GUNICORN_MAX_REQUEST_LINE,
            fields=cfg.limit_request_fields or GUNICORN_MAX_FIELDS,
            field_bytes=cfg.limit_request_field_size or GUNICORN_MAX_FIELD_SIZE,
            timeout=cfg.header_timeout,
            body_timeout=cfg.body_timeout,
        )


class _HeadRefused(Exception):
    """Raised in a parser callback to stop parsing a head that breaks a limit."""


class LimitedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol within ``limits`` and ``config.limit_concurrency``.

    httptools keeps the bytes of an unfinished head without saying how many, so data is fed to
    it in pieces: a head's piece ends at its blank line, or where the head would outgrow its
    limit, and a head still unfinished then is refused. A finished head is checked part by part
    before the app sees it.
    """

    limits: ClassVar[HeadLimits] = HeadLimits()

    @classmethod
    def with_limits(cls, limits: HeadLimits) -> type[LimitedHttpProtocol]:
        """This protocol with ``limits``: uvicorn builds each connection's protocol from a class."""
        return cast(type[LimitedHttpProtocol], type(cls.__name__, (cls,), {"limits": limits}))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_open = False  # a request has begun, its head is not complete
        self._head_bytes = 0  # bytes of the open head fed to the parser so far
        self._reading_body = False
        self._piece_bytes = 0  # the length of the piece being parsed
        self._piece_began = False  # a request began in it
        self._piece_body = 0  # body bytes in it
        self._head_since: float | None = None  # when the wait for the current head began
        self._head_timer: asyncio.TimerHandle | None = None
        self._refusal: tuple[HTTPStatus, str] | None = None  # once set, data is dropped
        self._data_at = 0.0  # when the last bytes arrived
        self._body_timer: asyncio.TimerHandle | None = None

    # Connection

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # uvicorn answers 503 once the connections reach its limit, this one included: say so
        # at once rather than hold the connection until its request arrives.
        if self.limit_concurrency is not None and len(self.connections) >= self.limit_concurrency:
            self._refuse(HTTPStatus.SERVICE_UNAVAILABLE, "Too many connections.")
            return
        self._start_head_clock()

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in (self._head_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        self._data_at = self.loop.time()
        if self._refusal is not None:
            return  # refused: whatever else comes is dropped
        if self._head_since is None and not self._reading_body and not self._request_in_flight():
            self._start_head_clock()  # the first bytes of a kept-alive connection's next request
        if data.endswith(b"\r\n\r\n"):  # a blank line last: no head can be left unfinished
            self._parse(data)
            return
        start = 0
        while start < len(data):
            end = self._piece_end(data, start)
            if not self._parse(memoryview(data)[start:end]):
                return
            start = end

    def _piece_end(self, data: bytes, start: int) -> int:
        """Where the piece of ``data`` from ``start`` ends: a body is parsed whole; a head up to
        its blank line, or as far as the head may still go."""
        if self._reading_body:
            return len(data)
        room = self.limits.head_bytes - self._head_bytes
        blank_line = data.find(b"\r\n\r\n", start, start + room)
        return min(len(data), start + room if blank_line < 0 else blank_line + 4)

    def _parse(self, piece: bytes | memoryview) -> bool:
        """Feed ``piece`` to the parser; whether to go on with the rest of the data."""
        self._piece_bytes = len(piece)
        self._piece_began = False
        self._piece_body = 0
        try:
            self.parser.feed_data(piece)
        except httptools.HttpParserUpgrade:
            return False  # no WebSocket here: the request is served as plain HTTP
        except httptools.HttpParserError:
            invalid = (HTTPStatus.BAD_REQUEST, "Invalid HTTP request received.")  # uvicorn's words
            self._refuse(*self._refusal or invalid)
            return False
        if self._head_open:
            if self._piece_began:  # all of the piece is this head's but the body before it
                self._head_bytes = len(piece) - self._piece_body
            else:
                self._head_bytes += len(piece)
            if self._head_bytes >= self.limits.head_bytes:  # and it goes on
                self._refuse(*self._head_too_large())
                return False
        return True

    # Parser callbacks

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_open = True
        self._piece_began = True

    def on_headers_complete(self) -> None:
        longest = self._head_bytes + self._piece_bytes  # the head is no longer than this
        self._head_since = None
        self._head_open = False
        self._head_bytes = 0
        self._reading_body = True
        too_many = len(self.headers) > self.limits.fields
        if (too_many or longest > self.limits.part_bytes) and (refusal := self._broken_limit()):
            self._refusal = refusal
            raise _HeadRefused(refusal[1])
        super().on_headers_complete()
        if self._body_timer is None and self.limits.body_timeout:
            self._body_timer = self.loop.call_later(
                self.limits.body_timeout, self._check_body_clock
            )

    def on_body(self, body: bytes) -> None:
        self._piece_body += len(body)
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._reading_body = False
        super().on_message_complete()

    def _broken_limit(self) -> tuple[HTTPStatus, str] | None:
        """The answer to a finished head that breaks a limit, if it does. Its bytes were bounded
        as they came, so checking its parts now, before the app runs, is soon enough."""
        limits = self.limits
        if len(self.url) > limits.line_bytes:
            message = f"The request target is longer than {limits.line_bytes} bytes."
            return HTTPStatus.REQUEST_URI_TOO_LONG, message
        if len(self.headers) > limits.fields:
            message = f"More than {limits.fields} header fields."
            return HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, message
        fields = [len(name) + len(value) + len(b": \r\n") for name, value in self.headers]
        if fields and max(fields) > limits.field_bytes:
            message = f"A header field is longer than {limits.field_bytes} bytes."
            return HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, message
        # A head pipelined behind a body may have come whole in the body's piece, unmeasured
        # then: measure it as written plainly (request line, fields, blank line).
        line = len(self.parser.get_method()) + len(self.url) + len(b"  HTTP/1.1\r\n\r\n")
        if line + sum(fields) > limits.head_bytes:
            return self._head_too_large()
        return None

    def _head_too_large(self) -> tuple[HTTPStatus, str]:
        message = f"The request head is longer than {self.limits.head_bytes} bytes."
        return HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, message

    # Refusals

    def _refuse(self, status: HTTPStatus, message: str) -> None:
        """Answer ``status`` and close: now, or once the responses to the requests before this
        one are out (pipelined requests), as an answer would land in the middle of them."""
        self._refusal = (status, message)
        self.logger.warning("%s%d %s", self._client_prefix(), status, message)
        if not self._request_in_flight():
            self._send_refusal(status, message)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._refusal and not self._request_in_flight() and not self.transport.is_closing():
            self._send_refusal(*self._refusal)

    def _send_refusal(self, status: HTTPStatus, message: str) -> None:
        body = message.encode("ascii")
        head = [STATUS_LINE[status]]
        defaults = self.server_state.default_headers  # the date; no server name
        head += [name + b": " + value + b"\r\n" for name, value in defaults]
        head += [
            b"content-type: text/plain; charset=utf-8\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)
        self.transport.close()

    def _request_in_flight(self) -> bool:
        return self.cycle is not None and not self.cycle.response_complete

    # The header timeout: one timer per connection, not one per request, looking at
    # ``_head_since`` when it fires.

    def _start_head_clock(self) -> None:
        self._head_since = self.loop.time()
        if self._head_timer is None and self.limits.timeout:
            self._head_timer = self.loop.call_later(self.limits.timeout, self._check_head_clock)

    def _check_head_clock(self) -> None:
        self._head_timer = None
        if self._head_since is None or self.transport.is_closing():
            return  # no head awaited: the clock starts again with the next request
        left = self._head_since + self.limits.timeout - self.loop.time()
        if left > 0:  # a head awaited since after the timer was set
            self._head_timer = self.loop.call_later(left, self._check_head_clock)
        elif self._head_open:
            self._refuse(HTTPStatus.REQUEST_TIMEOUT, "The request head took too long.")
        else:
            self.transport.close()  # nothing asked: an idle connection, closed without a word

    # The body timeout, likewise one timer per connection, looking at when data last came.

    def _check_body_clock(self) -> None:
        self._body_timer = None
        if not self._reading_body or self.transport.is_closing():
            return  # the body is in: the clock starts again with the next request's head
        waited = self.loop.time() - self._data_at
        if self.flow.read_paused or waited < self.limits.body_timeout:
            # Paused, the server is the one not reading: the client is not to blame.
            left = self.limits.body_timeout - (0 if self.flow.read_paused else waited)
            self._body_timer = self.loop.call_later(left, self._check_body_clock)
            return
        self.logger.warning("%sThe request body stopped arriving.", self._client_prefix())
        self.transport.close()

    def _client_prefix(self) -> str:
        return "{}:{} - ".format(*self.client) if self.client else ""
