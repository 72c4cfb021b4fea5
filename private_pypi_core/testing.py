"""The conformance suite every backend passes: subclass ``BackendConformance`` in your tests.

Example, for a backend installed as a plugin::

    import pytest
    from private_pypi_core.testing import BackendConformance, BackendUnderTest

    class TestMyStore(BackendConformance):
        @pytest.fixture
        def subject(self, tmp_path):
            config = MyStoreConfig(name="team", type="my_store", bucket=..., ...)
            yield BackendUnderTest(
                backend=MyStoreBackend(config, tmp_path),
                read_secret="...",
                write_secret="...",
            )

Every test gets a fresh, empty repository from ``subject``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from private_pypi_core.backend import Access, Backend, DistFile, FileExists, IndexConflict
from private_pypi_core.dists import parse_dist_filename
from private_pypi_core.index import PackageIndex, build_index


@dataclass
class BackendUnderTest:
    backend: Backend
    read_secret: str = field(repr=False)
    write_secret: str = field(repr=False)


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


WHEEL = "demo_pkg-1.0-py3-none-any.whl"
SDIST = "demo_pkg-1.0.tar.gz"
OTHER = "other-2.0.tar.gz"


class BackendConformance:
    """Storage, auth and index behaviour the core relies on."""

    @pytest.fixture
    def subject(self) -> BackendUnderTest:
        raise NotImplementedError("define a `subject` fixture returning a BackendUnderTest")

    def test_write_secret_may_write(self, subject: BackendUnderTest) -> None:
        assert subject.backend.authenticate(subject.write_secret) is Access.WRITE

    def test_read_secret_may_only_read(self, subject: BackendUnderTest) -> None:
        assert subject.backend.authenticate(subject.read_secret) is Access.READ

    def test_wrong_or_empty_secret_may_do_nothing(self, subject: BackendUnderTest) -> None:
        assert subject.backend.authenticate(subject.read_secret + "x") is Access.NONE
        assert subject.backend.authenticate("") is Access.NONE

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
        assert second.version != first.version
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
