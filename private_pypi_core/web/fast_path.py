"""The hot requests of an index, answered in front of the Falcon app at a fraction of its cost
per request: ``GET /simple/``, ``GET /simple/<project>/``, and ``GET`` or ``HEAD`` of a file
there (``GET`` of its core metadata).

A request is answered here only when its answer is known to be the Falcon app's own: no query
string, none of the headers read here sent twice, a read that ``Runtime.authorize_at_once``
answers (an anonymous read, or a credential this worker let in lately), a normalised project
the repository lists, a file of a backend that never redirects a download, a range the file
satisfies. The Falcon resources' own functions decide the rest (the format, the page, the
validators, the range) and list the headers. Every other request goes to the Falcon app as it
came, which answers it as ever: other paths and methods, every error (401, 403, 404, 406,
416, a store failing), redirects, browser sessions, clients being throttled.

The access log line and the metrics of a request answered here are those of the Falcon app's
answer: ``Watched`` wraps both, and the request's ``Notes`` get the same route and user.

``PRIVATE_PYPI_FAST_PATH=off`` in the server's environment sends every request to the Falcon
app, for the tests and the benchmark that compare both.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import falcon

from private_pypi_core.auth import ANONYMOUS_GRANT
from private_pypi_core.backend import Backend
from private_pypi_core.dists import validate_project
from private_pypi_core.errors import UserError
from private_pypi_core.guarded_backend import GuardedBackend
from private_pypi_core.index import IndexEntry
from private_pypi_core.repository import Repository
from private_pypi_core.web.conditional import gzip_accepted, is_current
from private_pypi_core.web.downloads import file_etag, file_headers, open_part
from private_pypi_core.web.negotiation import choose_format
from private_pypi_core.web.observe import NOTES, ASGIApp, Message, Receive, Scope, Send
from private_pypi_core.web.page_cache import RenderedPage
from private_pypi_core.web.ranges import requested_range
from private_pypi_core.web.runtime import Runtime
from private_pypi_core.web.simple import (
    PAGE_VARY,
    find_file,
    page_headers,
    project_page,
    read_stored,
    root_page,
)

SWITCH = "PRIVATE_PYPI_FAST_PATH"
PREFIX = "/simple/"
PROJECT_ROUTE = "/simple/{project}/"
FILE_ROUTE = "/simple/{project}/{filename}"
# The request headers an answer here depends on.
READ = frozenset(
    {
        b"authorization",
        b"cookie",
        b"accept",
        b"accept-encoding",
        b"if-none-match",
        b"if-modified-since",
        b"range",
        b"if-range",
    }
)
END: Message = {"type": "http.response.body"}

# Sends the answer; ``False`` when fetching its bytes failed before anything was sent.
Answer = Callable[[Send], Awaitable[bool]]


def enabled() -> bool:
    """Whether the worker serves the fast path (read once, as the worker starts)."""
    return os.environ.get(SWITCH, "").lower() != "off"


class FastPath:
    """``app`` (the Falcon app) behind the fast path; ``metrics_port`` is the metrics
    listener's, whose requests are all the app's (``web.metrics``)."""

    def __init__(self, app: ASGIApp, runtime: Runtime, metrics_port: int | None) -> None:
        self.app = app
        self.runtime = runtime
        self.metrics_port = metrics_port

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            answer = self._answer(scope) if scope["type"] == "http" else None
        except Exception:  # e.g. a configuration that fails to load: the app answers that
            answer = None
        if answer is None:
            await self.app(scope, receive, send)
            return
        first = await receive()  # as Falcon does: the request is in before it is answered
        if first["type"] == "http.disconnect":
            return
        if not await answer(send):
            await self.app(scope, _replayed(first, receive), send)

    def _answer(self, scope: Scope) -> Answer | None:
        """How to answer the request here, or ``None`` to leave it to the Falcon app."""
        path: str = scope["path"]
        method: str = scope["method"]
        if (
            not path.startswith(PREFIX)
            or method not in ("GET", "HEAD")
            or scope.get("query_string")
            or (self.metrics_port is not None and _port(scope) == self.metrics_port)
        ):
            return None
        headers = _read_headers(scope)
        client = _client(scope)
        if headers is None or client is None:
            return None
        opened = self.runtime.authorize_at_once(
            headers.get(b"authorization"), b"cookie" in headers, client
        )
        if opened is None:
            return None
        repository, grant = opened
        user = "-" if grant is ANONYMOUS_GRANT else repository.name
        project, slash, filename = path[len(PREFIX) :].partition("/")
        if method == "GET" and not project and not slash:
            return self._page(scope, repository, None, headers, user)
        if method == "GET" and project and slash and not filename:
            return self._page(scope, repository, project, headers, user)
        if project and filename and "/" not in filename:
            return self._file(scope, repository, project, filename, headers, user)
        return None

    def _page(
        self,
        scope: Scope,
        repository: Repository,
        project: str | None,
        headers: dict[bytes, str],
        user: str,
    ) -> Answer | None:
        """``/simple/`` (``project`` None) or a listed project's page, as ``SimpleRoot`` and
        ``ProjectPage`` answer them."""
        try:
            media_type = choose_format(headers.get(b"accept"), None)
        except UserError:
            return None
        if project is not None and (
            not _normalized(project)
            or not repository.page_is_fresh(project)  # a proxy's page to renew
            or repository.index.files_of(project) is None
        ):
            return None
        if project is None:
            page = root_page(self.runtime, repository, media_type)
        else:
            page = project_page(self.runtime, repository, project, media_type)
        use_gzip = page.gzipped is not None and gzip_accepted(headers.get(b"accept-encoding"))
        current = is_current(
            headers.get(b"if-none-match"),
            headers.get(b"if-modified-since"),
            page.last_modified,
            page.etag,
            page.gzip_etag,
        )
        start, body = _page_messages(page, media_type, use_gzip, current)
        return _ready(scope, PREFIX if project is None else PROJECT_ROUTE, user, start, body)

    def _file(
        self,
        scope: Scope,
        repository: Repository,
        project: str,
        filename: str,
        headers: dict[bytes, str],
        user: str,
    ) -> Answer | None:
        """A file, or its core metadata, as ``FileDownload`` answers them."""
        found = find_file(repository, project, filename) if _streams(repository.backend) else None
        if found is None:
            return None
        entry, is_metadata = found
        listed = file_headers(entry, is_metadata)
        if scope["method"] == "HEAD":
            if is_metadata:
                return None  # Falcon's answer: Content-Length: 0, a body it never read
            return _ready(scope, FILE_ROUTE, user, _start(200, listed), END)
        etag = file_etag(entry, is_metadata)
        if is_current(
            headers.get(b"if-none-match"),
            headers.get(b"if-modified-since"),
            entry.upload_time,
            etag,
        ):
            unsized = [header for header in listed if header[0] != "Content-Length"]
            return _ready(scope, FILE_ROUTE, user, _start(304, unsized), END)
        if is_metadata:
            return self._metadata(scope, repository, entry, listed, user)
        try:
            requested = requested_range(
                headers.get(b"range"), headers.get(b"if-range"), entry.size, etag
            )
        except falcon.HTTPError:  # a 416
            return None
        return self._part(scope, repository, entry, listed, requested, user)

    def _metadata(
        self,
        scope: Scope,
        repository: Repository,
        entry: IndexEntry,
        listed: list[tuple[str, str]],
        user: str,
    ) -> Answer:
        async def answer(send: Send) -> bool:
            try:
                data = await self.runtime.run(read_stored, repository, entry.metadata_dist)
            except Exception:
                return False  # the Falcon app asks the store again, and answers its failure
            start = _start(200, [*listed, ("Content-Length", str(len(data)))])
            body = {"type": "http.response.body", "body": data}
            return await _ready(scope, FILE_ROUTE, user, start, body)(send)

        return answer

    def _part(
        self,
        scope: Scope,
        repository: Repository,
        entry: IndexEntry,
        listed: list[tuple[str, str]],
        requested: tuple[int, int] | None,
        user: str,
    ) -> Answer:
        first, last = requested if requested is not None else (0, entry.size - 1)
        headers = [
            ("Content-Length", str(last - first + 1)) if name == "Content-Length" else (name, value)
            for name, value in listed
        ]
        if requested is not None:
            headers.append(("Content-Range", f"bytes {first}-{last}/{entry.size}"))
        start = _start(206 if requested is not None else 200, headers)

        async def answer(send: Send) -> bool:
            try:
                part = await open_part(
                    self.runtime, repository, entry.dist, first, last - first + 1
                )
            except Exception:
                return False  # the Falcon app asks the store again, and answers its failure
            _note(scope, FILE_ROUTE, user)
            await send(start)
            async with contextlib.aclosing(part.chunks()) as chunks:
                async for chunk in chunks:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send(END)
            return True

        return answer


def _page_messages(
    page: RenderedPage, media_type: str, use_gzip: bool, current: bool
) -> tuple[Message, Message]:
    """The messages answering with ``page``: built once, then kept with the page."""
    key = (use_gzip, current)
    messages = page.answers.get(key)
    if messages is None:
        headers = [*page_headers(page, media_type, use_gzip, current), ("Vary", PAGE_VARY)]
        body = b""
        if not current:
            body = page.gzipped if use_gzip and page.gzipped is not None else page.body
            headers.append(("Content-Length", str(len(body))))
        messages = page.answers[key] = (
            _start(304 if current else 200, headers),
            {"type": "http.response.body", "body": body},
        )
    return messages


def _ready(scope: Scope, route: str, user: str, start: Message, body: Message) -> Answer:
    """The answer of a response whose body is at hand."""

    async def answer(send: Send) -> bool:
        _note(scope, route, user)
        await send(start)
        await send(body)
        return True

    return answer


def _start(status: int, headers: list[tuple[str, str]]) -> Message:
    """A response's start message, its headers encoded as Falcon encodes them."""
    encoded = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers]
    return {"type": "http.response.start", "status": status, "headers": encoded}


def _note(scope: Scope, route: str, user: str) -> None:
    """Tell ``Watched`` what ``Annotate`` would: the route and who the request's credential
    opened a repository for."""
    notes = scope.get(NOTES)
    if notes is not None:
        notes.route = route
        notes.user = user


@functools.lru_cache(maxsize=4096)  # the same few hundred names, again and again
def _normalized(project: str) -> bool:
    """Whether ``project`` is a valid name, normalised (else Falcon answers 400, or redirects
    to the normalised name)."""
    try:
        return validate_project(project) == project
    except UserError:
        return False


def _read_headers(scope: Scope) -> dict[bytes, str] | None:
    """The headers read here, decoded as Falcon decodes them; ``None`` when one is sent twice
    (Falcon would join both values)."""
    found: dict[bytes, str] = {}
    for name, value in scope["headers"]:
        if name in READ:
            if name in found:
                return None
            found[name] = value.decode("latin-1")
    return found


def _client(scope: Scope) -> str | None:
    """The client's address as Falcon's ``remote_addr`` tells it, for the guess throttle: the
    peer's, whatever forwarding headers say; ``None`` where Falcon would find none."""
    client = scope.get("client")
    if not client:
        return "127.0.0.1"
    address: str = client[0]
    return address or None


def _port(scope: Scope) -> int | None:
    server = scope.get("server")
    return server[1] if server else None


def _streams(backend: Backend) -> bool:
    """Whether ``backend`` streams every download (its ``download_url`` is ``Backend``'s,
    which never redirects): else the Falcon app asks it, as it would for each download."""
    store = backend.backend if isinstance(backend, GuardedBackend) else backend
    return type(store).download_url is Backend.download_url


def _replayed(first: Mapping[str, Any], receive: Receive) -> Receive:
    """``receive``, giving ``first`` (taken from it already) first."""
    pending = [first]

    async def replayed() -> Mapping[str, Any]:
        return pending.pop() if pending else await receive()

    return replayed
