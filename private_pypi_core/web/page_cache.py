"""Simple pages rendered once per index change and served as bytes, with validators (and,
once the fast path answered with one, its ASGI messages: ``fast_path``).

A worker keeps one cache per repository. When the repository's index is replaced (an upload,
a sync), pages of projects whose files and status did not change are kept; the others, and
the root page, are rendered again on their next request.
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import falcon

from private_pypi_core.index import PackageIndex
from private_pypi_core.repository import Repository
from private_pypi_core.web.observe import Message

GZIP_MIN_BYTES = 1024  # smaller pages gain nothing from compression
GZIP_LEVEL = 6

# (project, or None for the root page; media type)
PageKey = tuple[str | None, str]


@dataclass(frozen=True)
class RenderedPage:
    body: bytes
    gzipped: bytes | None
    etag: str  # strong, quoted; the gzip form adds "-gz" inside the quotes
    # Whole seconds, as HTTP dates are. None when a page it replaced had the same second:
    # If-Modified-Since could not tell them apart, so only the ETag validates this one.
    last_modified: datetime | None
    last_modified_header: str | None  # formatted once, not per request
    # By (gzip, not modified): the response's start and body messages, built on first use.
    answers: dict[tuple[bool, bool], tuple[Message, Message]] = field(
        default_factory=dict, compare=False, repr=False
    )

    @classmethod
    def of(cls, body: bytes, replaced: datetime | None) -> RenderedPage:
        digest = hashlib.sha256(body).hexdigest()[:32]
        gzipped = gzip.compress(body, GZIP_LEVEL, mtime=0) if len(body) >= GZIP_MIN_BYTES else None
        now: datetime | None = datetime.now(UTC).replace(microsecond=0)
        if replaced is not None and now is not None and now <= replaced:
            now = None
        return cls(
            body=body,
            gzipped=gzipped,
            etag=f'"{digest}"',
            last_modified=now,
            last_modified_header=falcon.dt_to_http(now) if now is not None else None,
        )

    @property
    def gzip_etag(self) -> str:
        return self.etag[:-1] + '-gz"'


class PageCache:
    def __init__(self) -> None:
        self._repository: Repository | None = None
        self._index: PackageIndex | None = None
        self._pages: dict[PageKey, RenderedPage] = {}
        self._replaced: dict[PageKey, datetime] = {}  # Last-Modified of pages dropped

    def page(
        self, repository: Repository, key: PageKey, render: Callable[[PackageIndex], bytes]
    ) -> RenderedPage:
        index = repository.index
        if repository is not self._repository:
            self._repository, self._index = repository, index
            self._drop(lambda key: True)
        elif index is not self._index:
            self._keep_unchanged(index)
        page = self._pages.get(key)
        if page is None:
            page = self._pages[key] = RenderedPage.of(render(index), self._replaced.get(key))
        return page

    def _keep_unchanged(self, index: PackageIndex) -> None:
        old = self._index if self._index is not None else PackageIndex()
        self._index = index
        self._drop(
            lambda key: (
                key[0] is None
                or old.files_of(key[0]) != index.files_of(key[0])
                or old.status_of(key[0]) != index.status_of(key[0])
            )
        )

    def _drop(self, changed: Callable[[PageKey], bool]) -> None:
        for key in [key for key in self._pages if changed(key)]:
            page = self._pages.pop(key)
            if page.last_modified is not None:
                self._replaced[key] = page.last_modified
