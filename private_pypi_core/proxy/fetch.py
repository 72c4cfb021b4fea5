"""A proxy repository's store: its cache backend, which fetches a file it does not hold yet
from the upstream as the first client asks for it.

A fetch runs in a thread of its own, at the upstream's pace: it writes the bytes to a temp
file, hashing them, and stores the file once it is whole and its sha256 is the one the
upstream's page gave. Clients read the temp file behind it, each at its own pace, the last
byte only once the file is stored: a client never receives a complete file that does not
match, and a download that breaks off, or does not match, ends the clients' answers short and
is never stored. A client that goes away leaves the fetch to finish: the file is cached all
the same.

Concurrent first requests for one file download it once: in this process they read behind
the same fetch; another worker's fetch holds a lock file, and its requests are told so
(``FetchInProgress``) and ask again a little later, holding no thread meanwhile, then read
what it stored. A fetch slower than ``MIN_BYTES_PER_SECOND`` on average is given up, and at
most ``MAX_FETCHES`` run at once in a process.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import tempfile
import threading
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
MIN_BYTES_PER_SECOND = 16 << 10
MAX_FETCHES = 16  # per process: each is a thread and a connection to the upstream
WAIT_SECONDS = 1.0  # a reader looks again this often, whatever it was told


class FetchInProgress(Exception):
    """Another worker is fetching this file, or this one fetches all it may: ask again."""


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
        self.upstream = upstream
        self.source = source
        self.sized = sized
        self.locks = folder / "fetching"
        self.locks.mkdir(mode=0o700, exist_ok=True)
        self.temp_dir = temp_dir
        self.stores_index_parts = store.stores_index_parts  # type: ignore[misc]
        self._fetching: dict[str, Fetch] = {}  # by sha256, in this process
        self._fetching_lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(MAX_FETCHES)

    def open_file(self, dist: DistFile) -> BinaryIO:
        """The cached file, or the file coming from the upstream (read as it arrives when
        its size is known, else once stored); ``FetchInProgress`` while another worker
        fetches it."""
        try:
            stream = self.store.open_file(dist)
        except FileNotFoundError:
            fetch = self._fetch(dist)
        else:
            metrics.record_proxy_file(self.config.name, "hit")
            return stream
        if fetch is not None and fetch.source.size:
            reader = fetch.reader()
            if reader is not None:
                return cast(BinaryIO, reader)
        if fetch is not None:
            fetch.wait()
        return self.store.open_file(dist)

    def ensure_cached(self, dist: DistFile) -> None:
        """Fetch ``dist`` whole into the cache unless it is there (for a range of it)."""
        try:
            self.store.open_file(dist).close()
        except FileNotFoundError:
            fetch = self._fetch(dist)
            if fetch is not None:
                fetch.wait()

    def _fetch(self, dist: DistFile) -> Fetch | None:
        """The fetch of the listed ``dist`` under way in this process, or a new one; ``None``
        when the store has it now; ``FileNotFoundError`` when it is not listed."""
        source = self.source(dist)
        if source is None:
            raise FileNotFoundError(dist.filename)
        with self._fetching_lock:
            running = self._fetching.get(source.sha256)
        if running is not None:
            return running
        lock = filelock.FileLock(self.locks / f"{source.sha256}.lock", thread_local=False)
        try:
            lock.acquire(timeout=0)
        except filelock.Timeout:
            raise FetchInProgress(dist.filename) from None
        if not self._slots.acquire(blocking=False):
            _release(lock)
            raise FetchInProgress(dist.filename)
        try:
            with contextlib.suppress(FileNotFoundError):
                self.store.open_file(dist).close()
                self._finished(source, lock)
                return None
            response = self.upstream.open(source.url, repr(dist.filename))
        except UpstreamFailed as error:
            log.warning("%s: %s; nothing stored", dist.filename, error)
            metrics.record_proxy_file(self.config.name, "failed")
            self._finished(source, lock)
            raise
        except BaseException:
            self._finished(source, lock)
            raise
        try:
            fetch = Fetch(self, dist, source, response, lambda: self._finished(source, lock))
        except BaseException:
            response.close()
            self._finished(source, lock)
            raise
        with self._fetching_lock:
            self._fetching[source.sha256] = fetch
        fetch.start()
        return fetch

    def _finished(self, source: Source, lock: filelock.BaseFileLock) -> None:
        with self._fetching_lock:
            self._fetching.pop(source.sha256, None)
        _release(lock)
        self._slots.release()

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
    """A file coming from the upstream to a temp file, then to the store, in a thread of
    its own; ``reader`` follows it."""

    def __init__(
        self,
        backend: CachingBackend,
        dist: DistFile,
        source: Source,
        response: requests.Response,
        finished: Callable[[], None],
    ) -> None:
        """``finished`` is called once the fetch is over, stored or not."""
        self.backend, self.dist, self.source = backend, dist, source
        self.response = response
        self.finished = finished
        self.changed = threading.Condition()
        self.received = 0  # bytes in the temp file
        self.stored = False
        self.error: Exception | None = None
        fd, name = tempfile.mkstemp(dir=backend.temp_dir, prefix="fetch-", suffix=".tmp")
        self.temp = os.fdopen(fd, "wb")
        self.temp_path = Path(name)
        self.thread = threading.Thread(target=self._run, name=f"fetch {dist.filename}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def reader(self) -> FetchReader | None:
        """A stream of the file from its first byte, or ``None`` when the fetch is over
        (then the store has the file, or ``wait`` raises why not)."""
        with self.changed:
            if self.stored or self.error is not None:
                return None
            return FetchReader(self, open(self.temp_path, "rb"))  # the reader closes it

    def wait(self) -> None:
        """Until the file is stored; ``UpstreamFailed`` (or ``OSError``) when it was not."""
        with self.changed:
            while not self.stored and self.error is None:
                self.changed.wait(WAIT_SECONDS)
            if self.error is not None:
                raise _again(self.error)

    def _run(self) -> None:
        try:
            digest = hashlib.sha256()
            started = time.monotonic()
            while data := self.backend.upstream.read(self.response, FETCH_CHUNK_BYTES):
                digest.update(data)
                self.temp.write(data)
                self.temp.flush()
                with self.changed:
                    self.received += len(data)
                    self.changed.notify_all()
                self._check(started)
            self._check_whole(digest.hexdigest())
            os.fsync(self.temp.fileno())
            with contextlib.suppress(FileExists):  # another server stored it first
                self.backend.store.write_file(self.dist, self.temp_path)
        except Exception as error:
            self._failed(error)
        else:
            self._stored()
        finally:
            self.response.close()
            self.temp.close()
            self.temp_path.unlink(missing_ok=True)  # readers keep reading their open copy
            self.finished()

    def _check(self, started: float) -> None:
        known = self.source.size
        if known and self.received > known:
            raise UpstreamFailed(f"the upstream sent more than the {known:,} bytes listed")
        elapsed = time.monotonic() - started
        grace = self.backend.upstream.settings.timeout
        if elapsed > grace and self.received < (elapsed - grace) * MIN_BYTES_PER_SECOND:
            raise UpstreamTimedOut(
                f"{self.backend.upstream.label} sent {self.dist.filename!r} slower than "
                f"{MIN_BYTES_PER_SECOND // 1024} KiB/s"
            )

    def _check_whole(self, sha256: str) -> None:
        known = self.source.size
        if known and self.received < known:
            raise UpstreamFailed(
                f"the upstream broke off after {self.received:,} of {known:,} bytes"
            )
        if sha256 != self.source.sha256:
            raise UpstreamFailed(
                "the upstream sent a file whose sha256 is not the one its page lists"
            )

    def _stored(self) -> None:
        log.info("cached %s (%s bytes)", self.dist.filename, f"{self.received:,}")
        metrics.record_proxy_file(self.backend.config.name, "cached")
        if not self.source.size:
            with contextlib.suppress(Exception):  # the size is learned again, later
                self.backend.sized(self.dist, self.received)
        with self.changed:
            self.stored = True
            self.changed.notify_all()

    def _failed(self, error: Exception) -> None:
        if not isinstance(error, (UpstreamFailed, OSError)):
            log.exception("%s: fetching it failed", self.dist.filename)
            error = UpstreamFailed(f"fetching {self.dist.filename!r} failed")
        else:
            log.warning("%s: %s; nothing stored", self.dist.filename, error)
        metrics.record_proxy_file(self.backend.config.name, "failed")
        with self.changed:
            self.error = error
            self.changed.notify_all()


def _again(error: Exception) -> Exception:
    """A fresh copy of a fetch's ``error`` for one more of the requests that wait on it
    (one exception object raised in several threads would gather all their tracebacks)."""
    return type(error)(*error.args)


class FetchReader:
    """A client's stream of a file being fetched: the bytes in the temp file so far, the last
    one once the file is stored."""

    def __init__(self, fetch: Fetch, temp: BinaryIO) -> None:
        self.fetch = fetch
        self.temp = temp
        self.position = 0

    def read(self, size: int = -1) -> bytes:
        """What has arrived, up to ``size`` bytes, waiting for more when nothing has; a read
        that reaches the end of the file (any with ``size < 0``) waits until the file is
        stored, so that a file that fails is never handed on whole. ``b""`` at the end."""
        fetch = self.fetch
        known = fetch.source.size
        to_the_end = size < 0 or (known and self.position + size >= known)
        with fetch.changed:
            while True:
                if fetch.error is not None:
                    raise _again(fetch.error)
                if fetch.stored:
                    ready = fetch.received
                    break
                ready = fetch.received - 1  # the last byte waits for the file to be stored
                if not to_the_end and ready > self.position:
                    break
                fetch.changed.wait(WAIT_SECONDS)
        left = ready - self.position
        data = self.temp.read(left if size < 0 else min(size, left))
        self.position += len(data)
        return data

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        raise io.UnsupportedOperation("a file coming from the upstream is read in order")

    def close(self) -> None:
        self.temp.close()  # the fetch goes on: the file is cached for the next request
