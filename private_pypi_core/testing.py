"""The conformance suite every backend passes: subclass ``BackendConformance`` in your tests.

Install it with ``pip install "private-pypi-core[testing]"`` (it brings pytest). Example, for
a backend installed as a plugin::

    import pytest
    from private_pypi_core.testing import BackendConformance, BackendUnderTest

    class TestMyStore(BackendConformance):
        @pytest.fixture
        def subject(self, tmp_path):
            def unreachable():  # the same backend, its store out of reach
                return MyStoreBackend(MyStoreConfig(..., endpoint="http://127.0.0.1:9"), tmp_path)

            config = MyStoreConfig(name="team", type="my_store", endpoint=..., ...)
            return BackendUnderTest(MyStoreBackend(config, tmp_path), broken=unreachable)

Every test gets a fresh, empty repository from ``subject``. Each failure says which rule of
the backend contract (``private_pypi_core.api.Backend``) was broken.

The suite drives the backend as the server does: methods called from several threads at once,
a stream opened in one thread, read in others and closed in the event loop's, files far larger
than a store's single value, readers and listings racing a write. Two class attributes size the
large-file tests; change them in a subclass only with the reason written beside the new value:

- ``large_file_bytes``: the size of the large file (65 MiB and a bit).
- ``max_memory_bytes``: the most memory the backend may take at once to write or read it
  (32 MiB), as ``tracemalloc`` sees it: C libraries' own buffers are not counted, and nor is
  memory still held after the call, the store's own (an emulator running in the test's
  process keeps what it stores).
"""

from __future__ import annotations

import hashlib
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import pytest

from private_pypi_core.backend import (
    Backend,
    DistFile,
    FileExists,
    IndexConflict,
    StoredFile,
)
from private_pypi_core.dists import parse_dist_filename
from private_pypi_core.index import IndexEntry, PackageIndex, build_index, shard_key
from private_pypi_core.index_store import ShardCache, StoredIndex, read_remote, write_remote

MiB = 1 << 20
READ_BYTES = MiB  # what the server asks of a stream at a time
THREAD_SECONDS = 120  # the longest a backend call in another thread may take before it fails
POLL_SECONDS = 0.002  # between the reads and listings that race a write

T = TypeVar("T")


@dataclass
class BackendUnderTest:
    """The backend under test, on a fresh, empty store, and how to make one that fails.

    ``broken`` returns the same kind of backend with its store out of reach: a folder
    replaced by a file, an endpoint on a closed port, an emulator that refuses. Every backend
    can have one, and the suite needs it: a store that fails is what a server meets most.
    """

    backend: Backend
    broken: Callable[[], Backend]


def _source(tmp_path: Path, filename: str, data: bytes) -> tuple[DistFile, Path]:
    path = tmp_path / "upload" / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    dist_filename = filename.removesuffix(".metadata")
    dist = parse_dist_filename(dist_filename)
    return (dist.companion(".metadata") if dist_filename != filename else dist), path


def _read(backend: Backend, dist: DistFile) -> bytes:
    with backend.open_file(dist) as stream:
        return stream.read()


def _digest(backend: Backend, dist: DistFile) -> tuple[int, str]:
    """The size and sha256 of a stored file, read as the server reads it: a MiB at a time."""
    digest, size = hashlib.sha256(), 0
    with backend.open_file(dist) as stream:
        while chunk := stream.read(READ_BYTES):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def _pattern(size: int) -> bytes:
    """``size`` bytes in which every 16-byte block differs: a lost, doubled or reordered
    chunk shows."""
    return b"".join(i.to_bytes(16, "big") for i in range(size // 16 + 1))[:size]


def _mib(size: int) -> str:
    return f"{size / MiB:.1f} MiB"


@dataclass
class LargeFile:
    path: Path
    size: int
    sha256: str


@dataclass
class Measured:
    peak_bytes: int = 0


@contextmanager
def _held_memory() -> Iterator[Measured]:
    """The most memory (Python's, as ``tracemalloc`` sees it) taken at once in the block, less
    what is still held at its end: what a call needs to do its work, not what it keeps."""
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    tracemalloc.reset_peak()
    before, _ = tracemalloc.get_traced_memory()
    measured = Measured()
    try:
        yield measured
    finally:
        after, peak = tracemalloc.get_traced_memory()
        if started:
            tracemalloc.stop()
        measured.peak_bytes = peak - max(before, after)


@contextmanager
def _threads(count: int) -> Iterator[list[ThreadPoolExecutor]]:
    """``count`` single-thread pools, each its own thread; a hung call cannot hang the test."""
    pools = [ThreadPoolExecutor(1, thread_name_prefix="conformance") for _ in range(count)]
    try:
        yield pools
    finally:
        for pool in pools:
            pool.shutdown(wait=False, cancel_futures=True)


def _result(future: Future[T], rule: str) -> T:
    """The call's result; an ``AssertionError`` saying ``rule`` when it failed."""
    try:
        return future.result(timeout=THREAD_SECONDS)
    except Exception as error:
        raise AssertionError(f"{rule}: {type(error).__name__}: {error}") from error


WHEEL = "demo_pkg-1.0-py3-none-any.whl"
NOW = datetime(2026, 1, 1, tzinfo=UTC)
SDIST = "demo_pkg-1.0.tar.gz"
OTHER = "other-2.0.tar.gz"

VISIBLE_ONCE_COMPLETE = (
    "a file must become visible all at once, complete (write it under a name no reader "
    "asks for and rename it, or in one transaction, or as one multipart upload)"
)
STORE_FAILS_WITH_OSERROR = (
    "a backend raises OSError (or a subclass) when its store fails: the server answers it "
    "with 503 and Retry-After, so clients retry, and logs its message once per outage"
)


class BackendConformance:
    """Storage and index behaviour the core relies on."""

    #: Above the largest single value of common stores (MySQL's default max_allowed_packet:
    #: 64 MiB; a MongoDB document: 16 MiB; an etcd value, a memcached item, a Datastore
    #: entity: about 1 MiB), several times a multipart upload's part, and no whole number of
    #: MiB, so the last part is a short one. Stores with larger limits (SQLite's 1 GB) hold a
    #: file whole in memory to take it as one value, which ``max_memory_bytes`` catches.
    large_file_bytes: int = 65 * MiB + 4099
    #: The most memory the backend may take at once to write or read the large file: below its
    #: size, so holding a whole file is caught, and room for four 8 MiB parts in flight.
    max_memory_bytes: int = 32 * MiB

    @pytest.fixture
    def subject(self) -> BackendUnderTest:
        raise NotImplementedError("define a `subject` fixture returning a BackendUnderTest")

    @pytest.fixture(scope="class")
    @classmethod
    def large_file(cls, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LargeFile]:
        """A local file of ``large_file_bytes``, every MiB of it different, for every test of
        the class (the backend may hard-link it, never change it)."""
        path = tmp_path_factory.mktemp("large") / WHEEL
        size, digest, block = cls.large_file_bytes, hashlib.sha256(), _pattern(MiB)
        with open(path, "wb") as out:
            for offset in range(0, size, MiB):
                chunk = (offset // MiB).to_bytes(8, "big") + block[8 : min(MiB, size - offset)]
                out.write(chunk)
                digest.update(chunk)
        yield LargeFile(path, size, digest.hexdigest())
        path.unlink()

    def test_new_repository_is_empty(self, subject: BackendUnderTest) -> None:
        assert list(subject.backend.list_files()) == []
        assert subject.backend.read_index() is None

    def test_stored_file_is_listed_and_read_back(
        self, subject: BackendUnderTest, tmp_path: Path
    ) -> None:
        data = b"wheel bytes " * 1000
        dist, source = _source(tmp_path, WHEEL, data)
        subject.backend.write_file(dist, source)
        [stored] = list(subject.backend.list_files())
        assert (stored.filename, stored.size) == (WHEEL, len(data))
        assert stored.upload_time.tzinfo is not None
        assert stored.sha256 in (None, hashlib.sha256(data).hexdigest())
        assert _read(subject.backend, dist) == data
        assert source.read_bytes() == data, "the backend must leave the source file alone"

    def test_files_of_several_projects_are_listed(
        self, subject: BackendUnderTest, tmp_path: Path
    ) -> None:
        for filename in (WHEEL, SDIST, OTHER):
            subject.backend.write_file(*_source(tmp_path, filename, filename.encode()))
        assert sorted(f.filename for f in subject.backend.list_files()) == sorted(
            [WHEEL, SDIST, OTHER]
        )

    def test_existing_file_is_never_overwritten(
        self, subject: BackendUnderTest, tmp_path: Path
    ) -> None:
        dist, source = _source(tmp_path, WHEEL, b"original")
        subject.backend.write_file(dist, source)
        _, replacement = _source(tmp_path / "again", WHEEL, b"replacement")
        with pytest.raises(FileExists):
            subject.backend.write_file(dist, replacement)
        assert _read(subject.backend, dist) == b"original"

    def test_missing_file_cannot_be_opened(self, subject: BackendUnderTest) -> None:
        with pytest.raises(FileNotFoundError):
            subject.backend.open_file(parse_dist_filename(WHEEL))

    def test_deleted_file_is_gone(self, subject: BackendUnderTest, tmp_path: Path) -> None:
        dist, source = _source(tmp_path, WHEEL, b"data")
        subject.backend.write_file(dist, source)
        subject.backend.delete_file(dist)
        assert list(subject.backend.list_files()) == []
        with pytest.raises(FileNotFoundError):
            subject.backend.delete_file(dist)

    def test_index_file_round_trips_and_is_not_a_package(self, subject: BackendUnderTest) -> None:
        subject.backend.write_index(b"format = 1\n", replaces=None)
        first = subject.backend.read_index()
        assert first is not None and first.data == b"format = 1\n"
        subject.backend.write_index(b"format = 1\n[files]\n", replaces=first)
        second = subject.backend.read_index()
        assert second is not None and second.data == b"format = 1\n[files]\n"
        assert second.version != first.version, (
            "an index version must change whenever the stored bytes change"
        )
        assert list(subject.backend.list_files()) == []

    def test_index_write_from_a_stale_read_is_refused(self, subject: BackendUnderTest) -> None:
        subject.backend.write_index(b"format = 1\n", replaces=None)
        stale = subject.backend.read_index()
        subject.backend.write_index(b"format = 1\n[files]\n", replaces=stale)
        with pytest.raises(IndexConflict):
            subject.backend.write_index(b"lost update", replaces=stale)
        with pytest.raises(IndexConflict):
            subject.backend.write_index(b"lost update", replaces=None)
        current = subject.backend.read_index()
        assert current is not None and current.data == b"format = 1\n[files]\n"

    def test_index_round_trips_through_the_core(
        self, subject: BackendUnderTest, tmp_path: Path
    ) -> None:
        """The index as the core writes it: in one file, or in parts with
        ``stores_index_parts``; a change replaces only the parts it touched."""
        backend = subject.backend
        backend.write_file(*_source(tmp_path, WHEEL, b"wheel"))
        entries = [_entry(f"project-{n}") for n in range(20)]
        first = write_remote(
            backend, StoredIndex(PackageIndex(), None), PackageIndex.of(entries), ShardCache()
        )
        read = read_remote(backend, ShardCache(), label="the index")
        assert read.index == first.index
        assert [f.filename for f in backend.list_files()] == [WHEEL], (
            "the index and its parts are not distribution files: list_files must not list them"
        )
        changed = read.index.with_entry(_entry("project-0", "2.0"))
        write_remote(backend, read, changed, ShardCache())
        assert read_remote(backend, ShardCache(), label="the index").index == changed
        if backend.stores_index_parts:
            replaced = {
                name for key, name in read.part_names.items() if key == shard_key("project-0")
            }
            kept = set(read.part_names.values()) - replaced
            assert all(backend.read_index_part(name) is None for name in replaced)
            assert all(backend.read_index_part(name) is not None for name in kept)
            backend.delete_index_part(next(iter(replaced)))  # already gone: no error

    def test_companion_file_is_stored_beside_its_distribution(
        self, subject: BackendUnderTest, tmp_path: Path
    ) -> None:
        dist, source = _source(tmp_path, WHEEL, b"wheel")
        subject.backend.write_file(dist, source)
        metadata = dist.companion(".metadata")
        _, metadata_source = _source(tmp_path / "meta", metadata.filename, b"Name: demo")
        subject.backend.write_file(metadata, metadata_source)
        assert _read(subject.backend, metadata) == b"Name: demo"
        assert sorted(f.filename for f in subject.backend.list_files()) == [
            WHEEL,
            metadata.filename,
        ]

    def test_index_built_from_storage_has_true_hashes(
        self, subject: BackendUnderTest, tmp_path: Path
    ) -> None:
        for filename in (WHEEL, OTHER):
            subject.backend.write_file(*_source(tmp_path, filename, filename.encode() * 3))
        index = build_index(subject.backend, PackageIndex())
        assert set(index.projects) == {"demo-pkg", "other"}
        assert index.entries[OTHER].sha256 == hashlib.sha256(OTHER.encode() * 3).hexdigest()
        assert index.entries[WHEEL].version == "1.0"

    def test_stream_is_opened_read_and_closed_in_different_threads(
        self, subject: BackendUnderTest, tmp_path: Path
    ) -> None:
        """The server opens a stream in a worker thread, reads each chunk in whichever worker
        is free and closes it from the event loop's thread. Streams need not seek: the
        server skips to a range's start by reading."""
        data = _pattern(5 * 64 * 1024 + 5)
        dist, source = _source(tmp_path, WHEEL, data)
        subject.backend.write_file(dist, source)
        rule = "streams must be usable from any thread, one thread at a time"
        with _threads(3) as (opener, *readers):
            stream = _result(
                opener.submit(subject.backend.open_file, dist),
                "open_file failed in a worker thread",
            )
            chunks: list[bytes] = []
            while True:
                reader = readers[len(chunks) % len(readers)]
                chunk = _result(
                    reader.submit(stream.read, 64 * 1024),
                    "open_file's stream was read in another thread than the one that opened "
                    f"it, and failed: {rule}",
                )
                assert len(chunk) <= 64 * 1024, "stream.read(n) returned more than n bytes"
                if not chunk:
                    break
                chunks.append(chunk)
            assert b"".join(chunks) == data, (
                "open_file's stream, read a chunk at a time from several threads, gave other "
                f"bytes than were stored: {rule}"
            )
            try:
                stream.close()  # in this thread, as the event loop does
            except Exception as error:
                raise AssertionError(
                    "closing open_file's stream in the event loop's thread, after reads in "
                    f"others, failed: {rule}: {type(error).__name__}: {error}"
                ) from error
            whole = _result(
                opener.submit(subject.backend.open_file, dist),
                "open_file failed in a worker thread",
            )
            with whole:
                everything = _result(
                    readers[0].submit(whole.read),
                    f"stream.read() with no size failed in another thread: {rule}",
                )
            assert everything == data, "stream.read() with no size must return the whole file"

    def test_store_failures_are_os_errors(self, subject: BackendUnderTest, tmp_path: Path) -> None:
        dist, source = _source(tmp_path, WHEEL, b"wheel")
        backend = subject.broken()
        problems: list[str] = []

        def expect_os_error(
            call: str,
            action: Callable[[], object],
            misleading: tuple[type[Exception], ...],
            why: str,
        ) -> None:
            """``action`` must raise an ``OSError``; returning, or raising an answer of the
            contract that means something else (``misleading``), is wrong for ``why``."""
            try:
                result = action()
            except misleading as error:
                problems.append(f"{call} raised {type(error).__name__}: {why}")
            except OSError:
                return
            except Exception as error:
                problems.append(f"{call} raised {type(error).__name__}: {error}")
            else:
                problems.append(f"{call} returned {result!r}: {why}")
                close = getattr(result, "close", None)
                if callable(close):
                    close()

        not_missing = (
            "a store out of reach must not pass for a missing file (the server would answer "
            "404, and pip would not retry)"
        )
        expect_os_error(
            "list_files()",
            lambda: list(backend.list_files()),
            (),
            "a store out of reach is not an empty one (update_index would rebuild the index "
            "from nothing)",
        )
        expect_os_error(
            "open_file()",
            lambda: backend.open_file(dist),
            (FileNotFoundError,),
            f"{not_missing}; open_file asks the store before it returns a stream",
        )
        expect_os_error(
            "write_file()",
            lambda: backend.write_file(dist, source),
            (FileExists,),
            "the upload must fail with 503, not pass for stored or already there",
        )
        expect_os_error(
            "delete_file()", lambda: backend.delete_file(dist), (FileNotFoundError,), not_missing
        )
        expect_os_error(
            "read_index()",
            backend.read_index,
            (),
            "a store out of reach has an index the server cannot read, not none (the server "
            "would start a new, empty one)",
        )
        expect_os_error(
            "write_index()",
            lambda: backend.write_index(b"format = 1\n", replaces=None),
            (IndexConflict,),
            "no other server wrote the index (the core would read it again and retry, then "
            "report a conflict)",
        )
        if backend.stores_index_parts:
            expect_os_error(
                "read_index_part()",
                lambda: backend.read_index_part("0a3-" + "1" * 32),
                (),
                "a store out of reach has a part the server cannot read, not none (the core "
                "would take its index for replaced meanwhile)",
            )
        try:
            url = backend.download_url(dist)  # may answer without the store: a signed URL
        except OSError:
            pass
        except Exception as error:
            problems.append(f"download_url() raised {type(error).__name__}: {error}")
        else:
            assert url is None or isinstance(url, str), "download_url() returns a URL or None"
        assert not problems, (
            f"{STORE_FAILS_WITH_OSERROR}. With its store out of reach (BackendUnderTest.broken) "
            "the backend did not:\n- " + "\n- ".join(problems)
        )

    def test_large_file_is_stored_listed_and_read_back_whole(
        self, subject: BackendUnderTest, large_file: LargeFile
    ) -> None:
        dist = parse_dist_filename(WHEEL)
        try:
            subject.backend.write_file(dist, large_file.path)
        except Exception as error:
            raise AssertionError(
                f"write_file of a {_mib(large_file.size)} file failed: a backend stores files "
                "of any size up to the repository's max_file_bytes (5 GiB by default): where "
                "the store limits the size of one value, store a file in parts. "
                f"{type(error).__name__}: {error}"
            ) from error
        sizes = {stored.filename: stored.size for stored in subject.backend.list_files()}
        assert sizes == {WHEEL: large_file.size}, (
            f"list_files() gives {sizes} for one file of {large_file.size} bytes"
        )
        size, sha256 = _digest(subject.backend, dist)
        assert (size, sha256) == (large_file.size, large_file.sha256), (
            f"the {_mib(large_file.size)} file read back in chunks of a MiB is {size} bytes of "
            "other content: a stream gives a file's bytes in order, each once, to its end"
        )

    def test_large_file_passes_through_bounded_memory(
        self, subject: BackendUnderTest, large_file: LargeFile
    ) -> None:
        assert self.max_memory_bytes < large_file.size, (
            "max_memory_bytes must stay below large_file_bytes, or a backend holding a whole "
            "file in memory passes"
        )
        dist = parse_dist_filename(WHEEL)
        with _held_memory() as writing:
            subject.backend.write_file(dist, large_file.path)
        with _held_memory() as reading:
            _digest(subject.backend, dist)
        limit = f"(the suite's max_memory_bytes: {_mib(self.max_memory_bytes)})"
        assert writing.peak_bytes <= self.max_memory_bytes, (
            f"write_file took {_mib(writing.peak_bytes)} of memory at once to store a "
            f"{_mib(large_file.size)} file {limit}: send a file on in parts, never whole; "
            "the server receives many uploads at once"
        )
        assert reading.peak_bytes <= self.max_memory_bytes, (
            f"reading a {_mib(large_file.size)} file through open_file took "
            f"{_mib(reading.peak_bytes)} of memory at once {limit}: a stream fetches the file "
            "from the store as it is read, never whole"
        )

    def test_readers_never_see_a_file_before_it_is_completely_written(
        self, subject: BackendUnderTest, large_file: LargeFile
    ) -> None:
        dist = parse_dist_filename(WHEEL)
        written = threading.Event()
        seen: list[str] = []

        def poll() -> None:
            while not written.is_set():
                try:
                    size, sha256 = _digest(subject.backend, dist)
                except FileNotFoundError:
                    time.sleep(POLL_SECONDS)
                    continue
                except Exception as error:
                    seen.append(f"reading it failed: {type(error).__name__}: {error}")
                    return
                if size != large_file.size:
                    seen.append(f"it read {size} bytes of {large_file.size}")
                    return
                if sha256 != large_file.sha256:
                    seen.append("it read other bytes than were written")
                    return

        with _threads(3) as (writer, *readers):
            polls = [reader.submit(poll) for reader in readers]
            writing = writer.submit(subject.backend.write_file, dist, large_file.path)
            try:
                _result(writing, f"write_file of a {_mib(large_file.size)} file failed")
            finally:
                written.set()
            for polled in polls:
                _result(polled, "polling open_file while a file was written failed")
        assert not seen, (
            f"open_file found {WHEEL} while write_file was still storing it, and "
            f"{'; '.join(seen)}: {VISIBLE_ONCE_COMPLETE}"
        )
        assert _digest(subject.backend, dist) == (large_file.size, large_file.sha256)

    def test_listing_during_a_write_shows_complete_files_only(
        self, subject: BackendUnderTest, tmp_path: Path, large_file: LargeFile
    ) -> None:
        data = b"sdist bytes"
        subject.backend.write_file(*_source(tmp_path, SDIST, data))
        complete = {SDIST: len(data), WHEEL: large_file.size}
        problems: list[str] = []

        def check(listing: list[StoredFile]) -> None:
            names = {stored.filename for stored in listing}
            if SDIST not in names:
                problems.append(f"a listing left out {SDIST}, stored before the write began")
            for stored in listing:
                if stored.filename not in complete:
                    problems.append(
                        f"it showed {stored.filename!r}, a name nothing was stored under: "
                        "never list a write in progress (its temp file, its parts)"
                    )
                    continue
                if stored.size != complete[stored.filename]:
                    problems.append(
                        f"it showed {stored.filename} with {stored.size} bytes, "
                        f"{complete[stored.filename]} once complete"
                    )
                    continue
                try:
                    size, _ = _digest(subject.backend, parse_dist_filename(stored.filename))
                except Exception as error:
                    problems.append(
                        f"it showed {stored.filename}, and reading it then failed: "
                        f"{type(error).__name__}: {error}"
                    )
                    continue
                if size != stored.size:
                    problems.append(
                        f"it showed {stored.filename} with {stored.size} bytes, and reading it "
                        f"then gave {size}"
                    )

        with _threads(1) as (writer,):
            wheel = parse_dist_filename(WHEEL)
            writing = writer.submit(subject.backend.write_file, wheel, large_file.path)
            while not writing.done():
                listing = list(subject.backend.list_files())
                if not problems:
                    check(listing)
                time.sleep(POLL_SECONDS)
            _result(writing, f"write_file of a {_mib(large_file.size)} file failed")
        final = list(subject.backend.list_files())
        check(final)
        assert not problems, (
            "list_files(), called while write_file stored a large file, listed what is not "
            "a complete file: every listed file must be readable in full, with the listed "
            "size (update_index hashes what it lists), and "
            + VISIBLE_ONCE_COMPLETE
            + ":\n- "
            + "\n- ".join(dict.fromkeys(problems))
        )
        assert {stored.filename: stored.size for stored in final} == complete


def _entry(project: str, version: str = "1.0") -> IndexEntry:
    """An index entry of a wheel that need not be stored (the index is what is tested)."""
    filename = f"{project.replace('-', '_')}-{version}-py3-none-any.whl"
    return IndexEntry(filename, project, version, "0" * 64, 4, NOW)
