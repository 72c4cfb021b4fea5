"""Talking to an upstream simple index: a project's page (PEP 691 JSON, PEP 503 HTML as a
fallback, asked for conditionally), and a file's bytes.

A page becomes the list of index entries a proxy repository stores: the upstream's hashes,
``requires-python``, yank state and reason, size, upload time and core metadata hash (PEP 658,
714) are kept; each entry's ``url`` says where the file is fetched from. Files whose name is
not a wheel or sdist of the project, or that come without a sha256, are left out: nothing is
offered that could not be checked.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urldefrag, urljoin, urlsplit

from private_pypi_core.dists import parse_dist_filename
from private_pypi_core.errors import BadRequest, ServerError
from private_pypi_core.index import IndexEntry
from private_pypi_core.proxy.settings import (
    ProxySettings,
    origin_of,
    shown,
    without_credentials,
)

if TYPE_CHECKING:
    import requests

JSON_V1 = "application/vnd.pypi.simple.v1+json"
ACCEPT = f"{JSON_V1}, application/vnd.pypi.simple.v1+html;q=0.1, text/html;q=0.01"
MAX_REDIRECTS = 5
MAX_PAGE_BYTES = 64 << 20  # pypi.org's largest project pages are a few MB
PAGE_CHUNK_BYTES = 1 << 16
SHA256 = re.compile(r"[0-9a-f]{64}")


class UpstreamFailed(ServerError):
    """The upstream index failed (502): out of reach, an error, an answer that is no page."""


class UpstreamTimedOut(UpstreamFailed):
    """The upstream index did not answer in time (504)."""

    http_status = 504


@dataclass(frozen=True)
class Validators:
    """What a page was last fetched with, for a conditional request."""

    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True)
class Page:
    """An upstream answer for a project: its files (``None``: no such project upstream), or
    ``not_modified`` since the ``Validators`` sent."""

    files: list[IndexEntry] | None
    validators: Validators
    not_modified: bool = False


class Upstream:
    """The upstream index of one proxy repository; its methods may run in several threads."""

    def __init__(self, settings: ProxySettings) -> None:
        import requests  # here: a server without a proxy repository never loads it

        self.settings = settings
        address = urlsplit(settings.upstream)
        self.origin = origin_of(settings.upstream)
        self.credentials = (
            (unquote(address.username or ""), unquote(address.password or ""))
            if address.username or address.password
            else None
        )
        self.session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=32)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.label = f"the upstream index {shown(settings.upstream)}"

    def page(self, project: str, validators: Validators | None) -> Page:
        """The page of the normalised ``project``; ``UpstreamFailed`` when it cannot be had."""
        url = urljoin(without_credentials(self.settings.upstream), f"{project}/")
        headers = {"Accept": ACCEPT}
        if validators is not None and validators.etag:
            headers["If-None-Match"] = validators.etag
        if validators is not None and validators.last_modified:
            headers["If-Modified-Since"] = validators.last_modified
        response, page_url = self._get(url, headers)
        with response:
            if response.status_code == 304 and validators is not None:
                return Page(None, validators, not_modified=True)
            if response.status_code == 404:
                return Page(None, Validators())
            self._check_status(response, f"the page of {project!r}")
            body = self._read_page(response)
            received = Validators(
                response.headers.get("ETag"), response.headers.get("Last-Modified")
            )
            content_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        origins = self.settings.allowed_file_origins
        try:
            if content_type == JSON_V1:
                files = _json_files(project, json.loads(body), page_url, origins)
            else:
                files = _html_files(project, body.decode("utf-8", "replace"), page_url, origins)
        # AssertionError: what Python 3.11's HTMLParser raises on some malformed markup.
        except (ValueError, TypeError, AttributeError, KeyError, RecursionError, AssertionError):
            raise UpstreamFailed(
                f"{self.label} sent a page of {project!r} that is not a valid simple page"
            ) from None
        return Page(files, received)

    def open(self, url: str, what: str) -> requests.Response:
        """A streamed answer with the bytes at ``url`` (``what`` names them in messages);
        close it when done."""
        response, _ = self._get(url, {})
        try:
            self._check_status(response, what)
        except BaseException:
            response.close()
            raise
        return response

    def read(self, response: requests.Response, size: int) -> bytes:
        """Up to ``size`` bytes more of the body of ``response``, what arrived (``b""`` at
        its end); a stall
        longer than the timeout, or a connection cut short, is ``UpstreamFailed``."""
        try:
            return response.raw.read1(size, decode_content=True)
        except Exception as error:  # urllib3's own: ReadTimeoutError, ProtocolError
            if "timed out" in str(error).lower():
                raise UpstreamTimedOut(f"{self.label} stalled while sending") from None
            raise UpstreamFailed(f"{self.label} broke off while sending") from None

    def _get(self, url: str, headers: dict[str, str]) -> tuple[requests.Response, str]:
        """The streamed answer for ``url`` and the URL it came from. Redirects are followed
        here, to the allowed origins only (``ProxySettings.allowed_file_origins``), and the
        upstream's credentials go to its own origin only."""
        import requests

        timeout = self.settings.timeout
        for _ in range(MAX_REDIRECTS + 1):
            auth = self.credentials if origin_of(url) == self.origin else None
            try:
                response = self.session.get(
                    url,
                    headers=headers,
                    auth=auth,
                    stream=True,
                    timeout=(timeout, timeout),
                    allow_redirects=False,
                )
            except requests.exceptions.RequestException as error:
                raise self._failure(error) from None
            if not response.is_redirect:
                return response, url
            response.close()
            try:
                url = without_credentials(urljoin(url, response.headers["Location"]))
            except ValueError:
                raise UpstreamFailed(f"{self.label} redirected to an invalid URL") from None
            if origin_of(url) not in self.settings.allowed_file_origins:
                raise UpstreamFailed(f"{self.label} redirected to another origin: {shown(url)}")
        raise UpstreamFailed(f"{self.label} redirected more than {MAX_REDIRECTS} times")

    def _failure(self, error: Exception) -> UpstreamFailed:
        import requests

        if isinstance(error, requests.exceptions.Timeout):
            return UpstreamTimedOut(
                f"{self.label} did not answer within {self.settings.timeout:g} s"
            )
        if isinstance(error, requests.exceptions.ConnectionError):
            return UpstreamFailed(f"{self.label} is out of reach (connection failed)")
        return UpstreamFailed(f"{self.label} failed: {type(error).__name__}")

    def _check_status(self, response: requests.Response, what: str) -> None:
        if response.status_code != 200:
            raise UpstreamFailed(f"{self.label} answered {response.status_code} for {what}")

    def _read_page(self, response: requests.Response) -> bytes:
        deadline = time.monotonic() + 4 * self.settings.timeout
        body = bytearray()
        while chunk := self.read(response, PAGE_CHUNK_BYTES):
            body += chunk
            if len(body) > MAX_PAGE_BYTES:
                raise UpstreamFailed(
                    f"{self.label} sent a page larger than {MAX_PAGE_BYTES:,} bytes"
                )
            if time.monotonic() > deadline:
                raise UpstreamTimedOut(f"{self.label} sent a page too slowly")
        return bytes(body)


def _entry(
    project: str,
    filename: str,
    url: str,
    sha256: Any,
    origins: frozenset[str],
    *,
    requires_python: Any = None,
    yanked: str | None = None,
    metadata_sha256: Any = None,
    size: Any = 0,
    upload_time: Any = None,
) -> IndexEntry | None:
    """The index entry of an upstream file, or ``None`` when it is not offered."""
    url = without_credentials(urldefrag(url).url)  # the upstream's go with each request
    if origin_of(url) not in origins:
        return None  # fetched only from the upstream and the places named for its files
    if not isinstance(sha256, str) or not SHA256.fullmatch(sha256):
        return None
    try:
        dist = parse_dist_filename(filename)
    except BadRequest:
        return None  # an .egg, an .exe, a name that is not a distribution's
    if dist.project != project:
        return None
    valid_metadata = isinstance(metadata_sha256, str) and SHA256.fullmatch(metadata_sha256)
    return IndexEntry(
        filename=filename,
        project=project,
        version=dist.version,
        sha256=sha256,
        size=size if type(size) is int and size >= 0 else 0,
        upload_time=_time(upload_time),
        requires_python=requires_python
        if isinstance(requires_python, str) and requires_python
        else None,
        metadata_sha256=metadata_sha256 if valid_metadata else None,
        yanked=yanked,
        url=url,
    )


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _json_files(
    project: str, document: dict[str, Any], page_url: str, origins: frozenset[str]
) -> list[IndexEntry]:
    entries = []
    for file in document["files"]:
        yanked = file.get("yanked", False)
        metadata = file.get("core-metadata", file.get("dist-info-metadata"))
        entry = _entry(
            project,
            file["filename"],
            urljoin(page_url, file["url"]),
            file.get("hashes", {}).get("sha256"),
            origins,
            requires_python=file.get("requires-python"),
            yanked=(yanked if isinstance(yanked, str) else "") if yanked else None,
            metadata_sha256=metadata.get("sha256") if isinstance(metadata, dict) else None,
            size=file.get("size", 0),
            upload_time=file.get("upload-time"),
        )
        if entry is not None:
            entries.append(entry)
    return entries


class _Links(HTMLParser):
    """The anchors of a PEP 503 page: (href, attributes, text)."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, dict[str, str | None], str]] = []
        self._open: tuple[str, dict[str, str | None]] | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            attributes = dict(attrs)
            href = attributes.get("href")
            self._open = (href, attributes) if href else None
            self._text = []

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._open is not None:
            self.links.append((*self._open, "".join(self._text).strip()))
            self._open = None


def _html_files(
    project: str, text: str, page_url: str, origins: frozenset[str]
) -> list[IndexEntry]:
    parser = _Links()
    parser.feed(text)
    entries = []
    for href, attributes, anchor_text in parser.links:
        url, fragment = urldefrag(urljoin(page_url, href))
        filename = anchor_text or unquote(urlsplit(url).path.rsplit("/", 1)[-1])
        metadata = attributes.get("data-core-metadata") or attributes.get("data-dist-info-metadata")
        yanked = (attributes["data-yanked"] or "") if "data-yanked" in attributes else None
        entry = _entry(
            project,
            filename,
            url,
            fragment.removeprefix("sha256=") if fragment.startswith("sha256=") else None,
            origins,
            requires_python=attributes.get("data-requires-python"),
            yanked=yanked,
            metadata_sha256=metadata.removeprefix("sha256=") if metadata else None,
        )
        if entry is not None:
            entries.append(entry)
    return entries
