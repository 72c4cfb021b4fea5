"""A proxy repository's store: its cache backend, which fetches a file it does not hold yet
from the upstream as the first client asks for it.

The bytes go to the client as they arrive, and to a temp file; the file is stored only once
it is whole and its sha256 is the one the upstream's page gave. The last chunk is held back
until then, so a client never receives a complete file that does not match: a download that
breaks off, or does not match, ends the client's response short and is never stored.

Concurrent first requests for one file, in any worker of the server, download it once: the
first holds a lock file while fetching; the others are told so (``FetchInProgress``) and ask
again a little later, holding no thread meanwhile, then read what it stored. A download that
slows below ``MIN_BYTES_PER_SECOND`` on average is given up: a trickle holds no thread for ever.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, cast

import filelock

from private_pypi_core import metrics
from private_pypi_core.backend import (
    Backend,
    DistFile,
    FileExists,
    IndexFile,
    StoredFile,
)
from private_pypi_core.proxy.upstream import Upstream, UpstreamFailed, UpstreamTimedOut

if TYPE_CHECKING:
    import requests

log = logging.getLogger(__name__)

FETCH_CHUNK_BYTES = 1 << 20
# A read hands on what arrived within this long, so the rate is checked as bytes trickle in.
READ_SECONDS = 1.0
MIN_BYTES_PER_SECOND = 16 << 10


class FetchInProgress(Exception):
    """Another request is fetching this file now: ask again shortly."""


@dataclass(frozen=True)
class Source:
    """Where a file not yet cached comes from, and what it must be."""

    url: str
    sha256: str
    size: int  # 0: unknown (an upstream page without sizes)


class CachingBackend(Backend):
    """The cache ``store`` of a proxy repository, filled from the upstream on demand;
    ``source`` says where a listed file comes from (``None``: not listed)."""

    def __init__(
        self,
        store: Backend,
        upstream: Upstream,
        source: Callable[[DistFile], Source | None],
        folder: Path,
        temp_dir: Path,
        sized: Callable[[DistFile, int], None],
    ) -> None:
        """``sized`` is told the size of a file stored whose size its ``Source`` left out."""
        super().__init__(store.config, store.root, admin_secret=store.admin_secret)
        self.store = store
        self.sized = sized
        self.upstream = upstream
        self.source = source
        self.locks = folder / "fetching"
        self.locks.mkdir(mode=0o700, exist_ok=True)
        self.temp_dir = temp_dir
        self.stores_index_parts = store.stores_index_parts  # type: ignore[misc]

    def open_file(self, dist: DistFile) -> BinaryIO:
        """The cached file, or the file coming from the upstream (streamed as it arrives
        when its size is known, else fetched whole first); ``FetchInProgress`` while another
        request fetches it."""
        try:
            stream = self.store.open_file(dist)
        except FileNotFoundError:
            fetch = self._start(dist)
        else:
            metrics.record_proxy_file(self.config.name, "hit")
            return stream
        if fetch is not None and fetch.source.size:
            return cast(BinaryIO, fetch)
        if fetch is not None:
            fetch.drain()
        return self.store.open_file(dist)

    def ensure_cached(self, dist: DistFile) -> None:
        """Fetch ``dist`` whole into the cache unless it is there (for a range of it)."""
        try:
            self.store.open_file(dist).close()
        except FileNotFoundError:
            fetch = self._start(dist)
            if fetch is not None:
                fetch.drain()

    def _start(self, dist: DistFile) -> Fetch | None:
        """A fetch of the listed ``dist``, holding its lock; ``None`` when the store has it
        now; ``FileNotFoundError`` when it is not listed."""
        source = self.source(dist)
        if source is None:
            raise FileNotFoundError(dist.filename)
        lock = filelock.FileLock(self.locks / f"{source.sha256}.lock", thread_local=False)
        try:
            lock.acquire(timeout=0)
        except filelock.Timeout:
            raise FetchInProgress(dist.filename) from None
        try:
            with contextlib.suppress(FileNotFoundError):
                self.store.open_file(dist).close()
                _release(lock)
                return None
            return Fetch(self, dist, source, lock)
        except UpstreamFailed as error:
            log.warning("%s: %s; nothing stored", dist.filename, error)
            metrics.record_proxy_file(self.config.name, "failed")
            _release(lock)
            raise
        except BaseException:
            _release(lock)
            raise

    def download_url(self, dist: DistFile) -> str | None:
        return None  # a file may not be cached yet: always sent through this server

    def list_files(self) -> Iterable[StoredFile]:
        return self.store.list_files()

    def write_file(self, dist: DistFile, source: Path) -> None:
        self.store.write_file(dist, source)

    def delete_file(self, dist: DistFile) -> None:
        self.store.delete_file(dist)

    def read_index(self) -> IndexFile | None:
        return self.store.read_index()

    def write_index(self, data: bytes, replaces: IndexFile | None) -> None:
        self.store.write_index(data, replaces)

    def read_index_part(self, name: str) -> bytes | None:
        return self.store.read_index_part(name)

    def write_index_part(self, name: str, data: bytes) -> None:
        self.store.write_index_part(name, data)

    def delete_index_part(self, name: str) -> None:
        self.store.delete_index_part(name)


def _release(lock: filelock.BaseFileLock) -> None:
    """Release ``lock`` and remove its file, so that the cache leaves no file per fetch. A
    request that opened the file just before it went may fetch the same file again: that
    costs a download, never a wrong file (the store keeps the first copy)."""
    lock.release(force=True)
    with contextlib.suppress(OSError):
        os.unlink(lock.lock_file)


class Fetch:
    """A file coming from the upstream: read like a stored file, written to a temp file as
    it is read, and stored when complete and checked."""

    def __init__(
        self, backend: CachingBackend, dist: DistFile, source: Source, lock: filelock.BaseFileLock
    ) -> None:
        self.backend, self.dist, self.source, self.lock = backend, dist, source, lock
        self.digest = hashlib.sha256()
        self.received = 0
        self.done = False
        self.started = time.monotonic()
        fd, name = tempfile.mkstemp(dir=backend.temp_dir, prefix="fetch-", suffix=".tmp")
        self.temp = os.fdopen(fd, "wb")
        self.temp_path = Path(name)
        self.response: requests.Response | None = None
        try:
            self.response = backend.upstream.open(source.url, repr(dist.filename))
        except BaseException:
            self.close()
            raise

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes, what arrives within ``READ_SECONDS``; the last ones only once
        the whole file is checked and stored."""
        if self.done or self.response is None:
            return b""
        size = FETCH_CHUNK_BYTES if size < 0 else size
        if self.source.size:
            size = min(size, self.source.size - self.received)
        parts: list[bytes] = []
        try:
            started = time.monotonic()
            while size > 0:
                data = self.backend.upstream.read(self.response, size)
                self._check_rate()
                parts.append(data)
                size -= len(data)
                if not data or self._complete() or time.monotonic() - started > READ_SECONDS:
                    break
            received = b"".join(parts)
            self._take(received, at_end=not parts[-1] if parts else True)
        except UpstreamFailed as error:
            log.warning("%s: %s; nothing stored", self.dist.filename, error)
            metrics.record_proxy_file(self.backend.config.name, "failed")
            self.close()
            raise
        return received

    def drain(self) -> None:
        """Fetch the rest, to the store."""
        with self:
            while self.read(FETCH_CHUNK_BYTES):
                pass

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        raise io.UnsupportedOperation("a file coming from the upstream is read in order")

    def _check_rate(self) -> None:
        elapsed = time.monotonic() - self.started
        grace = self.backend.upstream.settings.timeout
        if elapsed > grace and self.received < (elapsed - grace) * MIN_BYTES_PER_SECOND:
            raise UpstreamTimedOut(
                f"{self.backend.upstream.label} sent {self.dist.filename!r} slower than "
                f"{MIN_BYTES_PER_SECOND // 1024} KiB/s"
            )

    def _complete(self) -> bool:
        return bool(self.source.size) and self.received >= self.source.size

    def _take(self, data: bytes, *, at_end: bool) -> None:
        self.received += len(data)
        self.digest.update(data)
        self.temp.write(data)
        known = self.source.size
        if known and self.received > known:
            raise UpstreamFailed(f"the upstream sent more than the {known:,} bytes listed")
        if (known and self.received == known) or (at_end and not known):
            if known and self.backend.upstream.read(self.response, 1):  # type: ignore[arg-type]
                raise UpstreamFailed(f"the upstream sent more than the {known:,} bytes listed")
            if self.digest.hexdigest() != self.source.sha256:
                raise UpstreamFailed(
                    "the upstream sent a file whose sha256 is not the one its page lists"
                )
            self._store()
        elif at_end:
            raise UpstreamFailed(
                f"the upstream broke off after {self.received:,} of {known:,} bytes"
            )

    def _store(self) -> None:
        self.temp.flush()
        os.fsync(self.temp.fileno())
        with contextlib.suppress(FileExists):  # another server stored it first
            self.backend.store.write_file(self.dist, self.temp_path)
        self.done = True
        log.info("cached %s (%s bytes)", self.dist.filename, f"{self.received:,}")
        metrics.record_proxy_file(self.backend.config.name, "cached")
        self.close()
        if not self.source.size:
            self.backend.sized(self.dist, self.received)

    def close(self) -> None:
        if self.response is not None:
            self.response.close()
        self.temp.close()
        self.temp_path.unlink(missing_ok=True)
        if self.lock.is_locked:
            _release(self.lock)

    def __enter__(self) -> Fetch:  # closed at the end of the block, stored or not
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
