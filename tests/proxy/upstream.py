"""A loopback emulator of an upstream package index, for the pull-through cache's tests.

``StaticUpstream`` plays pypi.org's ``/simple/`` and files.pythonhosted.org on 127.0.0.1, serving
real wheels and sdists that the test adds, as the Simple Repository API specifies:

- PEP 503: HTML project list and pages, ``#sha256=`` fragments, ``data-requires-python``,
  normalised project names (other spellings are redirected, 301, to them);
- PEP 592: yanked files (``data-yanked``, JSON ``yanked``);
- PEP 658 and PEP 714: a wheel's core metadata at ``<file url>.metadata``, advertised with its
  sha256 as ``data-core-metadata`` / ``core-metadata`` (and the older ``dist-info-metadata``);
- PEP 691: JSON chosen by content negotiation on ``Accept``, answered with ``Vary: Accept``;
- PEP 700: ``api-version`` 1.1, with ``versions``, ``size`` and ``upload-time``.

Pages carry a strong ``ETag`` and answer a matching ``If-None-Match`` with 304. A ``Fault``, set at
any time, makes chosen requests slow, failing, truncated, corrupted, HTML-only or missing, and
``stop()`` / ``start()`` take the server away and bring it back on the same port. Every request is
logged, so a test can tell what reached the upstream.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import html
import json
import socket
import sys
import threading
import time
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal, get_args
from urllib.parse import unquote, urlsplit

from packaging.utils import (
    NormalizedName,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import Version

API_VERSION = "1.1"
JSON_TYPE = "application/vnd.pypi.simple.v1+json"
HTML_V1_TYPE = "application/vnd.pypi.simple.v1+html"
HTML_TYPE = "text/html"
_MEDIA_TYPES = {
    JSON_TYPE: JSON_TYPE,
    "application/vnd.pypi.simple.latest+json": JSON_TYPE,
    HTML_V1_TYPE: HTML_V1_TYPE,
    "application/vnd.pypi.simple.latest+html": HTML_V1_TYPE,
    HTML_TYPE: HTML_TYPE,
}
_INVERT = bytes(range(255, -1, -1))  # byte b -> 255 - b: same length, every byte differs

FaultKind = Literal[
    "slow", "slow_body", "error", "truncate", "wrong_hash", "html_only", "not_found", "redirect"
]


@dataclass(frozen=True)
class Fault:
    """A misbehaviour for the requests whose path contains ``match`` (every request if empty).

    ``slow`` waits ``seconds`` before answering; ``slow_body`` sends the headers and half the body,
    then waits ``seconds``; ``error`` answers 500; ``truncate`` promises the full Content-Length,
    sends half the body and closes; ``wrong_hash`` serves other bytes of the same length for files;
    ``html_only`` ignores ``Accept`` (no PEP 691); ``not_found`` answers 404; ``redirect``
    answers 302 to ``location``.
    """

    kind: FaultKind
    match: str = ""
    seconds: float = 0.0
    location: str = ""

    def __post_init__(self) -> None:
        if self.kind not in get_args(FaultKind):
            raise ValueError(f"unknown fault {self.kind!r}, expected one of {get_args(FaultKind)}")


class _Default(enum.Enum):
    THIRTY_DAYS_AGO = enum.auto()


@dataclass(frozen=True)
class UpstreamFile:
    """One distribution file as the upstream serves it."""

    filename: str
    project: NormalizedName
    version: Version
    sha256: str
    size: int
    stored: Path
    upload_time: datetime | None
    requires_python: str | None
    yanked: str | None
    metadata: bytes | None

    @property
    def url_path(self) -> str:
        return f"/files/{self.sha256[:2]}/{self.sha256}/{self.filename}"

    @property
    def metadata_sha256(self) -> str | None:
        return None if self.metadata is None else hashlib.sha256(self.metadata).hexdigest()


@dataclass(frozen=True)
class _Answer:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def _text(status: int, message: str, **headers: str) -> _Answer:
    return _Answer(status, f"{message}\n".encode(), {"Content-Type": "text/plain", **headers})


def _parse_filename(filename: str) -> tuple[NormalizedName, Version]:
    if filename.endswith(".whl"):
        name, version, _, _ = parse_wheel_filename(filename)
        return name, version
    return parse_sdist_filename(filename)


def _wheel_metadata(path: Path) -> bytes:
    with zipfile.ZipFile(path) as wheel:
        members = [
            name
            for name in wheel.namelist()
            if name.count("/") == 1 and name.endswith(".dist-info/METADATA")
        ]
        if len(members) != 1:
            raise ValueError(f"{path.name}: expected one *.dist-info/METADATA, found {members}")
        return wheel.read(members[0])


def negotiate(accept: str | None) -> str:
    """The media type PEP 691 content negotiation picks for ``accept`` (HTML when none fits)."""
    best, best_q = HTML_TYPE, 0.0
    for part in (accept or "").split(","):
        media, *params = (item.strip() for item in part.split(";"))
        if media.lower() not in _MEDIA_TYPES:
            continue
        q = 1.0
        for param in params:
            if param.startswith("q="):
                with contextlib.suppress(ValueError):
                    q = float(param[2:])
        if q > best_q:
            best, best_q = _MEDIA_TYPES[media.lower()], q
    return best


def _iso8601(moment: datetime) -> str:
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _json_file(file: UpstreamFile, base: str) -> dict[str, Any]:
    metadata = {"sha256": file.metadata_sha256} if file.metadata_sha256 else False
    entry: dict[str, Any] = {
        "filename": file.filename,
        "url": base + file.url_path,
        "hashes": {"sha256": file.sha256},
        "requires-python": file.requires_python,
        "yanked": False if file.yanked is None else (file.yanked or True),
        "core-metadata": metadata,
        "dist-info-metadata": metadata,
        "size": file.size,
    }
    if file.upload_time is not None:
        entry["upload-time"] = _iso8601(file.upload_time)
    return entry


def _html_anchor(href: str, text: str, attributes: dict[str, str | None]) -> str:
    rendered = "".join(
        f' {name}="{html.escape(value)}"' for name, value in attributes.items() if value is not None
    )
    return f'<a href="{html.escape(href)}"{rendered}>{html.escape(text)}</a><br />'


def _html_file(file: UpstreamFile, base: str) -> str:
    metadata = f"sha256={file.metadata_sha256}" if file.metadata_sha256 else None
    attributes = {
        "data-requires-python": file.requires_python,
        "data-yanked": file.yanked,
        "data-core-metadata": metadata,
        "data-dist-info-metadata": metadata,
    }
    return _html_anchor(f"{base}{file.url_path}#sha256={file.sha256}", file.filename, attributes)


def _html_page(title: str, anchors: list[str]) -> bytes:
    return (
        "<!DOCTYPE html>\n<html>\n<head>\n"
        f'<meta name="pypi:repository-version" content="{API_VERSION}">\n'
        f"<title>{html.escape(title)}</title>\n</head>\n<body>\n<h1>{html.escape(title)}</h1>\n"
        + "\n".join(anchors)
        + "\n</body>\n</html>\n"
    ).encode()


def _json_page(content: dict[str, Any]) -> bytes:
    return json.dumps({"meta": {"api-version": API_VERSION}, **content}, indent=1).encode()


def _none_match(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110's weak comparison, as ``If-None-Match`` asks."""
    if if_none_match is None:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in tags or etag in tags


def _page(body: bytes, media: str, changed: float, if_none_match: str | None) -> _Answer:
    etag = f'"{hashlib.sha256(body).hexdigest()}"'
    headers = {
        "Content-Type": media,
        "Vary": "Accept",
        "ETag": etag,
        "Last-Modified": formatdate(changed, usegmt=True),
    }
    # A 304 keeps the body only for its Content-Length, which RFC 9110 lets it carry.
    return _Answer(304 if _none_match(if_none_match, etag) else 200, body, headers)


class StaticUpstream:
    """An index on 127.0.0.1 serving the files ``add()`` is given, from its copies in ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.fault: Fault | None = None
        self.port = 0
        self._files: dict[str, UpstreamFile] = {}
        self._changed: dict[str, float] = {"": time.time()}  # "" is the project list
        self._log: list[tuple[str, str, int]] = []
        self.authorizations: list[str | None] = []  # each request's Authorization header
        self._lock = threading.Lock()
        self._server: _Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def simple_url(self) -> str:
        return f"{self.url}/simple/"

    def add(
        self,
        path: Path,
        *,
        upload_time: datetime | _Default | None = _Default.THIRTY_DAYS_AGO,
        requires_python: str | None = None,
        yanked: str | None = None,
        metadata: bool = True,
    ) -> UpstreamFile:
        """Publish ``path`` (a wheel or sdist); ``yanked`` is the reason, "" for none given."""
        project, version = _parse_filename(path.name)
        data = path.read_bytes()
        sha256 = hashlib.sha256(data).hexdigest()
        stored = self.root / sha256 / path.name
        stored.parent.mkdir(parents=True, exist_ok=True)
        stored.write_bytes(data)
        if upload_time is _Default.THIRTY_DAYS_AGO:
            upload_time = datetime.now(UTC) - timedelta(days=30)
        wheel_metadata = _wheel_metadata(path) if metadata and path.suffix == ".whl" else None
        file = UpstreamFile(
            path.name, project, version, sha256, len(data), stored, upload_time,
            requires_python, yanked, wheel_metadata,
        )  # fmt: skip
        with self._lock:
            self._files[file.filename] = file
            self._changed[project] = self._changed[""] = time.time()
        return file

    def remove(self, filename: str) -> None:
        with self._lock:
            file = self._files.pop(filename)
            self._changed[file.project] = self._changed[""] = time.time()

    def set_fault(
        self, kind: FaultKind, *, match: str = "", seconds: float = 0.0, location: str = ""
    ) -> None:
        self.fault = Fault(kind, match, seconds, location)

    def clear_fault(self) -> None:
        self.fault = None

    @property
    def requests(self) -> list[tuple[str, str, int]]:
        """A copy of the log: ``(method, path, status)`` for every request answered so far."""
        with self._lock:
            return list(self._log)

    def count(self, path_substring: str) -> int:
        return sum(path_substring in path for _, path, _ in self.requests)

    @property
    def not_modified_count(self) -> int:
        return sum(status == 304 for _, _, status in self.requests)

    def clear_requests(self) -> None:
        with self._lock:
            self._log.clear()

    def start(self) -> None:
        """Listen (again) on the same port as before, or on a free one the first time."""
        if self._server is None:
            self._server = _Server(self.port, self)
            self.port = self._server.server_address[1]
            threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self) -> None:
        """Close the listening socket and every open connection: clients are then refused."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
            server.close_connections()
            server.stopping.set()  # only now: a stalled answer must not complete

    def __enter__(self) -> StaticUpstream:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _record(self, method: str, path: str, status: int) -> None:
        with self._lock:
            self._log.append((method, path, status))

    def _answer(
        self, target: str, accept: str | None, if_none_match: str | None, *, corrupt: bool
    ) -> _Answer:
        path = unquote(urlsplit(target).path)
        if path.startswith("/files/"):
            return self._file(path, corrupt)
        if path == "/simple":
            return _text(301, "moved", Location=self.simple_url)
        if path == "/simple/":
            with self._lock:
                projects = sorted({file.project for file in self._files.values()})
                changed = self._changed[""]
            media = negotiate(accept)
            if media == JSON_TYPE:
                body = _json_page({"projects": [{"name": name} for name in projects]})
            else:
                anchors = [_html_anchor(f"{self.simple_url}{name}/", name, {}) for name in projects]
                body = _html_page("Simple index", anchors)
            return _page(body, media, changed, if_none_match)
        name = path.removeprefix("/simple/")
        if path.startswith("/simple/") and "/" not in name.rstrip("/"):
            return self._project(name, negotiate(accept), if_none_match)
        return _text(404, "not found")

    def _project(self, name: str, media: str, if_none_match: str | None) -> _Answer:
        project = canonicalize_name(name.rstrip("/"))
        if name != f"{project}/":
            return _text(301, "moved", Location=f"{self.simple_url}{project}/")
        with self._lock:
            files = sorted(
                (f for f in self._files.values() if f.project == project),
                key=lambda f: (f.version, f.filename),
            )
            changed = self._changed.get(project, 0.0)
        if not files:
            return _text(404, f"no project {project}")
        if media == JSON_TYPE:
            versions = sorted({f.version for f in files})
            content = {
                "name": project,
                "versions": [str(version) for version in versions],
                "files": [_json_file(f, self.url) for f in files],
            }
            body = _json_page(content)
        else:
            body = _html_page(f"Links for {project}", [_html_file(f, self.url) for f in files])
        return _page(body, media, changed, if_none_match)

    def _file(self, path: str, corrupt: bool) -> _Answer:
        parts = path.split("/")  # "", "files", sha256[:2], sha256, filename
        if len(parts) != 5:
            return _text(404, "not found")
        _, _, prefix, sha256, filename = parts
        with self._lock:
            file = self._files.get(filename.removesuffix(".metadata"))
        if file is None or file.sha256 != sha256 or prefix != sha256[:2]:
            return _text(404, f"no file {filename}")
        if filename.endswith(".metadata"):
            if file.metadata is None:
                return _text(404, f"no metadata for {file.filename}")
            body = file.metadata
        else:
            body = file.stored.read_bytes()
        body = body.translate(_INVERT) if corrupt else body
        return _Answer(200, body, {"Content-Type": "application/octet-stream"})


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, upstream: StaticUpstream) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.upstream = upstream
        self.stopping = threading.Event()  # wakes faults' sleeps when the server stops
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()

    def close_connections(self) -> None:
        with self.connections_lock:
            for connection in self.connections:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up on a fault, or stop() closing a connection, are expected here.
        if not isinstance(sys.exception(), OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            with self.server.connections_lock:
                self.server.connections.discard(self.connection)

    def do_GET(self) -> None:
        self._serve(head=False)

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: ``StaticUpstream.requests`` is the log."""

    def _serve(self, *, head: bool) -> None:
        upstream = self.server.upstream
        fault = upstream.fault
        if fault is not None and fault.match not in self.path:
            fault = None
        if fault is not None and fault.kind == "slow":
            self.server.stopping.wait(fault.seconds)
        answer = self._answer(fault)
        upstream._record(self.command, self.path, answer.status)
        upstream.authorizations.append(self.headers.get("Authorization"))
        self._send(answer, fault, head=head)

    def _answer(self, fault: Fault | None) -> _Answer:
        kind = fault.kind if fault else None
        if kind == "error":
            return _text(500, "upstream error (fault injected)")
        if kind == "not_found":
            return _text(404, "not found (fault injected)")
        if kind == "redirect" and fault is not None:
            return _text(302, "moved (fault injected)", Location=fault.location)
        accept = None if kind == "html_only" else self.headers.get("Accept")
        if_none_match = self.headers.get("If-None-Match")
        return self.server.upstream._answer(
            self.path, accept, if_none_match, corrupt=kind == "wrong_hash"
        )

    def _send(self, answer: _Answer, fault: Fault | None, *, head: bool) -> None:
        self.send_response(answer.status)
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        if head or answer.status == 304:
            return
        body, half = answer.body, len(answer.body) // 2
        if fault is not None and fault.kind == "truncate":
            self.wfile.write(body[:half])
            self.close_connection = True
        elif fault is not None and fault.kind == "slow_body":
            self.wfile.write(body[:half])
            self.server.stopping.wait(fault.seconds)
            self.wfile.write(body[half:])
        else:
            self.wfile.write(body)
