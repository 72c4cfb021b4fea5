"""Sending a stored distribution file (or its core metadata): its headers, and its bytes in
few trips to a thread.

Backends are synchronous, so each read runs in a thread (``Runtime.run``); a trip there and
back costs about as much as copying a few hundred KB, so reads are large, and the file is
opened and its first chunk read in the same trip: most files are smaller than a chunk.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from typing import BinaryIO, TypeVar

import falcon
import falcon.asgi

from private_pypi_core.backend import DistFile
from private_pypi_core.dists import content_type
from private_pypi_core.errors import NotFound
from private_pypi_core.index import IndexEntry
from private_pypi_core.proxy.fetch import FetchInProgress
from private_pypi_core.proxy.upstream import UpstreamTimedOut
from private_pypi_core.repository import Repository
from private_pypi_core.web.ranges import skip
from private_pypi_core.web.runtime import Runtime

# Each read costs a trip to a thread: 2 MiB reads send a large file about 10% faster than
# 1 MiB ones, and larger gain nothing. A slow client's connection holds up to two chunks (one
# being sent, the next read).
DOWNLOAD_CHUNK_BYTES = 2 << 20
METADATA_CONTENT_TYPE = "text/plain; charset=utf-8"
FILE_CACHE_CONTROL = "private, max-age=31536000, immutable"  # a published file never changes
# A request for a file another request is fetching from the upstream asks again this often,
# this long at most.
FETCH_POLL_SECONDS = 0.05
FETCH_WAIT_SECONDS = 300

T = TypeVar("T")


def file_etag(entry: IndexEntry, is_metadata: bool) -> str:
    return f'"{entry.metadata_sha256}"' if is_metadata else f'"{entry.sha256}"'


def file_headers(entry: IndexEntry, is_metadata: bool) -> list[tuple[str, str]]:
    """The headers of a file's answer (a whole file's Content-Length; none for core metadata,
    whose size only its body tells)."""
    if is_metadata:
        headers = [("Content-Type", METADATA_CONTENT_TYPE)]
    else:
        headers = [
            ("Content-Type", content_type(entry.filename)),
            ("Content-Length", str(entry.size)),
            ("Accept-Ranges", "bytes"),
        ]
    headers.append(("ETag", file_etag(entry, is_metadata)))
    if entry.upload_time is not None:
        headers.append(("Last-Modified", falcon.dt_to_http(entry.upload_time)))
    headers.append(("Cache-Control", FILE_CACHE_CONTROL))
    return headers


@dataclass
class FilePart:
    """A stored file, open where the part to send starts, with the part's first chunk read."""

    stream: BinaryIO
    first_chunk: bytes
    length: int  # of the part, in bytes
    run: Callable[..., Awaitable[bytes]]  # a read in a thread (``in_thread``)

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        """The part's bytes, each chunk read while the one before is sent; the stream is
        closed at the end (or when the sending stops)."""
        reading: asyncio.Future[bytes] | None = None
        try:
            chunk, left = self.first_chunk, self.length
            while chunk:
                left -= len(chunk)
                if left > 0:
                    reading = asyncio.ensure_future(
                        self.run(self.stream.read, min(DOWNLOAD_CHUNK_BYTES, left))
                    )
                yield chunk
                if reading is None:
                    break
                chunk, reading = await reading, None
        finally:
            try:
                if reading is not None:  # the sending stopped: the read ends before the close
                    await asyncio.wait([reading])
                    if not reading.cancelled():
                        reading.exception()  # taken: the client is gone, nobody needs it
            finally:
                self.stream.close()


async def open_part(
    runtime: Runtime, repository: Repository, dist: DistFile, offset: int, length: int
) -> FilePart:
    """``length`` bytes of ``dist`` from ``offset``, open and the first chunk read;
    ``NotFound`` when the file is listed but no longer stored."""

    def opened() -> FilePart:
        try:
            stream = repository.backend.open_file(dist)
        except FileNotFoundError:
            raise NotFound(f"{dist.filename!r} is listed but no longer stored.") from None
        try:
            if offset:
                skip(stream, offset)
            first_chunk = stream.read(min(DOWNLOAD_CHUNK_BYTES, length))
        except BaseException:
            stream.close()
            raise
        return FilePart(stream, first_chunk, length, in_thread(runtime, repository, dist.project))

    return await patiently(runtime, repository, dist.project, opened)


async def refreshed(
    runtime: Runtime, repository: Repository, project: str, resp: falcon.asgi.Response
) -> None:
    """Bring ``project``'s page up to date before it is answered for (a proxy's page older
    than its TTL is fetched again), with the ``Warning`` the repository gives, if any. A
    repository that holds its own files answers at once, without a thread."""
    if repository.waits_on_upstream(project):
        warning: str | None = await runtime.run_upstream(repository.refresh_project, project)
        if warning is not None:
            resp.set_header("Warning", warning)


def in_thread(
    runtime: Runtime, repository: Repository, project: str
) -> Callable[..., Awaitable[T]]:
    """How a call about ``project`` of ``repository`` runs in a thread: in the pool kept for
    the upstream's slow answers when it may wait on an upstream, so that they never hold up
    other requests."""
    return runtime.run_upstream if repository.waits_on_upstream(project) else runtime.run


async def patiently(
    runtime: Runtime,
    repository: Repository,
    project: str,
    function: Callable[..., T],
    *args: object,
) -> T:
    """``function(*args)`` in a thread (``in_thread``), asked again while another request
    fetches the same file from the upstream; no thread waits meanwhile."""
    run = in_thread(runtime, repository, project)
    deadline = time.monotonic() + FETCH_WAIT_SECONDS
    while True:
        try:
            return await run(function, *args)
        except FetchInProgress as error:
            if time.monotonic() > deadline:
                raise UpstreamTimedOut(f"{error} is still being fetched: try again later") from None
            await asyncio.sleep(FETCH_POLL_SECONDS)
