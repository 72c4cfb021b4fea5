"""The simple pages as a server serves them: fetched once, their ETags, and a static copy."""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

from bench.client import Http
from bench.corpus import BigFile
from bench.servers import Server, link_or_copy


@dataclass(frozen=True)
class Page:
    path: str
    body: bytes
    etag: str | None


def page_paths(projects: list[str]) -> list[str]:
    """``/simple/`` first, then every project's page."""
    return ["/simple/", *(f"/simple/{project}/" for project in projects)]


def request_headers(server: Server, gzip_pages: bool) -> dict[str, str]:
    """What every page request of the benchmark sends (besides Host and If-None-Match)."""
    headers = {"Authorization": server.authorization}
    if gzip_pages:
        headers["Accept-Encoding"] = "gzip"
    return headers


def fetch_pages(server: Server, paths: list[str], headers: dict[str, str]) -> list[Page]:
    """GET each path once over one keep-alive connection; every answer must be a 200."""
    pages = []
    with Http(server.port) as http:
        for path in paths:
            response = http.get(path, headers)
            if response.status != 200:
                raise RuntimeError(f"{server.name}: GET {path} answered {response.status}")
            pages.append(Page(path=path, body=response.body, etag=response.headers.get("etag")))
    return pages


def check_revalidation(server: Server, page: Page, headers: dict[str, str]) -> int:
    """The status ``If-None-Match: <the page's ETag>`` gets (304 when revalidation works)."""
    assert page.etag is not None
    with Http(server.port) as http:
        return http.get(page.path, {**headers, "If-None-Match": page.etag}).status


def write_site(site: Path, pages: list[Page], download: BigFile, download_path: str) -> None:
    """``pages`` (identity-encoded) as ``<path>/index.html`` plus the download file.

    With ``gzip`` bodies the page is stored as sent and decompressed beside it, so nginx's
    ``gzip_static`` answers either way.
    """
    for page in pages:
        directory = site / page.path.strip("/")
        directory.mkdir(parents=True, exist_ok=True)
        if page.body[:2] == b"\x1f\x8b":
            (directory / "index.html.gz").write_bytes(page.body)
            (directory / "index.html").write_bytes(gzip.decompress(page.body))
        else:
            (directory / "index.html").write_bytes(page.body)
    target = site / download_path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    link_or_copy(download.path, target)
