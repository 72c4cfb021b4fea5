"""Shared by the protocol tests: the app in process, page parsing, a real server's access log,
the ``private_pypi`` CLI, a recording proxy and a stand-in extra index on 127.0.0.1."""

from __future__ import annotations

import hashlib
import http.server
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

import requests
from falcon.testing import Result

from tests.core.helpers import Site
from tests.e2e.clients import run
from tests.server import RunningServer, private_pypi_command

JSON_V1 = "application/vnd.pypi.simple.v1+json"
HTML_V1 = "application/vnd.pypi.simple.v1+html"
HTML_LEGACY = "text/html"
OFFERED = (JSON_V1, HTML_V1, HTML_LEGACY)
# What pip (26) and uv send to a simple index.
PIP_ACCEPT = f"{JSON_V1}, {HTML_V1}; q=0.1, {HTML_LEGACY}; q=0.01"
UV_ACCEPT = f"{JSON_V1}, {HTML_V1};q=0.2, {HTML_LEGACY};q=0.01"
# PEP 700 upload-time: always UTC, always microseconds, always "Z".
UPLOAD_TIME_PATTERN = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def media_type(response_content_type: str | None) -> str:
    """``text/html; charset=utf-8`` -> ``text/html``."""
    return (response_content_type or "").split(";")[0].strip().lower()


def vary_tokens(vary: str | None) -> set[str]:
    return {token.strip().lower() for token in (vary or "").split(",") if token.strip()}


# --- The app in process --------------------------------------------------------------------


class LocalIndex(Site):
    """The Falcon app on the embedded default (repository ``local``), without a server."""

    def get(self, path: str, accept: str | None = None, **params: str) -> Result:
        """``GET path`` with the read secret and, when given, that ``Accept`` header."""
        headers = dict(self.read)
        if accept is not None:
            headers["Accept"] = accept
        return self.client.simulate_get(path, headers=headers, params=params or None)

    def publish(self, *dists: Path) -> None:
        for dist in dists:
            result = self.upload(dist)
            assert result.status_code == 200, f"{dist.name}: {result.status} {result.text}"

    def stored_files(self) -> list[str]:
        """Every file under the project folders of the storage, as ``<project>/<file>``."""
        return sorted(
            str(p.relative_to(self.storage))
            for p in self.storage.glob("*/*")
            if p.is_file() and not p.name.startswith(".") and not p.parent.name.startswith(".")
        )


def local_index(root: Path, *, extra_index_url: str = "") -> LocalIndex:
    return LocalIndex.open(root, extra_index_url=extra_index_url)


# --- Parsing project pages -----------------------------------------------------------------


@dataclass
class Anchor:
    """One ``<a>`` of an HTML project page, with every attribute (entities decoded)."""

    filename: str
    href: str
    attributes: dict[str, str | None]

    @property
    def sha256(self) -> str | None:
        fragment = urlsplit(self.href).fragment
        return fragment.removeprefix("sha256=") if fragment.startswith("sha256=") else None


@dataclass
class HtmlPage:
    anchors: dict[str, Anchor] = field(default_factory=dict)
    meta: list[tuple[str, str]] = field(default_factory=list)  # (name, content)

    def meta_values(self, name: str) -> list[str]:
        return [content for meta_name, content in self.meta if meta_name == name]


class _PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.page = HtmlPage()
        self._anchor: dict[str, str | None] | None = None
        self._text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "meta":
            attributes = dict(attrs)
            self.page.meta.append((attributes.get("name") or "", attributes.get("content") or ""))
        elif tag == "a":
            self._anchor, self._text = dict(attrs), ""

    def handle_data(self, data: str) -> None:
        if self._anchor is not None:
            self._text += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._anchor is not None:
            href = self._anchor.get("href") or ""
            filename = self._text.strip() or unquote(urlsplit(href).path.rsplit("/", 1)[-1])
            self.page.anchors[filename] = Anchor(filename, href, self._anchor)
            self._anchor = None


def parse_html(text: str) -> HtmlPage:
    parser = _PageParser()
    parser.feed(text)
    parser.close()
    return parser.page


def json_keys(document: Any) -> Iterator[str]:
    """Every key anywhere in a JSON document."""
    if isinstance(document, dict):
        for key, value in document.items():
            yield key
            yield from json_keys(value)
    elif isinstance(document, list):
        for item in document:
            yield from json_keys(item)


# --- A real server: access log and CLI -----------------------------------------------------


class AccessLog:
    """The request lines a real server logged (``--accesslog=<path>``), read from an offset."""

    def __init__(self, path: Path, server: RunningServer) -> None:
        self.path = path
        self.server = server
        self.offset = 0

    def mark(self) -> None:
        """Forget what was logged so far: ``since_mark`` starts here."""
        self.offset = self.path.stat().st_size if self.path.exists() else 0

    def since_mark(self) -> list[str]:
        """The request lines (``GET /path``) logged since ``mark``, complete: a request sent
        now is waited for, so every earlier one has been written too."""
        sentinel = f"/login/?sentinel={uuid.uuid4().hex}"
        requests.get(self.server.url + sentinel, timeout=10)
        deadline = time.monotonic() + 10
        while True:
            with open(self.path, "rb") as log:
                log.seek(self.offset)
                lines = log.read().decode(errors="replace").splitlines()
            if any(sentinel in line for line in lines) or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        requests_logged = []
        for line in lines:
            if sentinel in line:
                continue
            quoted = line.split('"')
            if len(quoted) >= 3:
                method, _, rest = quoted[1].partition(" ")
                requests_logged.append(f"{method} {rest.rsplit(' ', 1)[0]}")
        return requests_logged


def wheel_downloads(lines: list[str]) -> list[str]:
    """The logged requests that fetched a whole wheel (not its ``.metadata``)."""
    return [line for line in lines if unquote(line.split("?")[0]).endswith(".whl")]


def cli(*args: str, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the real ``private_pypi`` command (the script next to the test interpreter)."""
    return run([*private_pypi_command(), *args], dict(env))


# --- Small HTTP servers on 127.0.0.1 -------------------------------------------------------


@dataclass
class Recorded:
    method: str
    path: str
    accept: str | None
    status: int
    content_type: str | None


class _ThreadedServer(http.server.ThreadingHTTPServer):
    daemon_threads = True


class _BackgroundServer:
    def __init__(self, handler: type[http.server.BaseHTTPRequestHandler]) -> None:
        self.httpd = _ThreadedServer(("127.0.0.1", 0), handler)
        self.httpd.owner = self  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    HOP_BY_HOP = frozenset(
        {"connection", "keep-alive", "transfer-encoding", "content-encoding", "content-length"}
    )

    def do_GET(self) -> None:
        proxy: RecordingProxy = self.server.owner  # type: ignore[attr-defined]
        headers = {k: v for k, v in self.headers.items() if k.lower() not in {"host"}}
        upstream = requests.get(
            proxy.upstream + self.path, headers=headers, allow_redirects=False, timeout=30
        )
        body = upstream.content
        proxy.recorded.append(
            Recorded(
                "GET",
                self.path,
                self.headers.get("Accept"),
                upstream.status_code,
                upstream.headers.get("Content-Type"),
            )
        )
        self.send_response(upstream.status_code)
        for name, value in upstream.headers.items():
            if name.lower() not in self.HOP_BY_HOP:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class RecordingProxy(_BackgroundServer):
    """Forwards GETs to ``upstream`` and records each request's ``Accept`` and the answer's
    ``Content-Type``: what a server's access log cannot show."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.recorded: list[Recorded] = []
        super().__init__(_ProxyHandler)


class _StaticHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        site: StaticIndex = self.server.owner  # type: ignore[attr-defined]
        site.requested.append(self.path)
        page = site.pages.get(self.path.split("?")[0])
        body = (page or "not found\n").encode()
        self.send_response(200 if page is not None else 404)
        self.send_header("Content-Type", "text/html; charset=utf-8" if page else "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class StaticIndex(_BackgroundServer):
    """A stand-in public index: fixed HTML pages by path; records every path requested."""

    def __init__(self, pages: Mapping[str, str]) -> None:
        self.pages = dict(pages)
        self.requested: list[str] = []
        super().__init__(_StaticHandler)


def project_html(filenames: list[str]) -> str:
    links = "".join(f'<a href="{name}#sha256={"0" * 64}">{name}</a>\n' for name in filenames)
    return f"<!DOCTYPE html>\n<html><body>\n{links}</body></html>\n"


def absolute(base: str, href: str) -> str:
    return urljoin(base, href.split("#")[0])
