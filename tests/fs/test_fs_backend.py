from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from private_pypi_core.backend import Access
from private_pypi_core.dists import parse_dist_filename
from private_pypi_core.plugins import installed_backends
from private_pypi_core.testing import BackendConformance, BackendUnderTest
from private_pypi_fs.backend import FileSystemBackend, FileSystemConfig


def make_backend(root: Path, **settings: str) -> FileSystemBackend:
    config = FileSystemConfig(
        name="team", type="file_system", read_secret="r-secret", write_secret="w-secret", **settings
    )
    return FileSystemBackend(config, root)


class TestFileSystemBackend(BackendConformance):
    @pytest.fixture
    def subject(self, tmp_path: Path) -> Iterator[BackendUnderTest]:
        yield BackendUnderTest(make_backend(tmp_path / "root"), "r-secret", "w-secret")


def test_plugin_is_found_through_its_entry_point() -> None:
    assert installed_backends()["file_system"] is FileSystemBackend


def test_files_live_under_root_cache_name_storage_by_default(tmp_path: Path) -> None:
    backend = make_backend(tmp_path)
    source = tmp_path / "demo-1.0.tar.gz"
    source.write_bytes(b"sdist")
    backend.write_file(parse_dist_filename(source.name), source)
    assert (tmp_path / "cache" / "team" / "storage" / "demo" / "demo-1.0.tar.gz").read_bytes() == (
        b"sdist"
    )


def test_storage_path_setting_moves_the_store(tmp_path: Path) -> None:
    backend = make_backend(tmp_path / "root", storage_path=str(tmp_path / "elsewhere"))
    backend.write_index(b"format = 1\n", replaces=None)
    assert (tmp_path / "elsewhere" / "index.json").read_bytes() == b"format = 1\n"


def test_unset_secret_opens_nothing(tmp_path: Path) -> None:
    config = FileSystemConfig(name="team", type="file_system", read_secret="only-read")
    backend = FileSystemBackend(config, tmp_path)
    assert backend.authenticate("") == 0


def test_failed_write_leaves_no_partial_file(tmp_path: Path) -> None:
    backend = make_backend(tmp_path)
    dist = parse_dist_filename("demo-1.0.tar.gz")
    with pytest.raises(FileNotFoundError):
        backend.write_file(dist, tmp_path / "missing-source")
    project_dir = tmp_path / "cache" / "team" / "storage" / "demo"
    assert not project_dir.exists() or os.listdir(project_dir) == []
    assert list(backend.list_files()) == []


def test_hashed_secrets_open_the_repository_and_their_hashes_do_not(tmp_path: Path) -> None:
    read, write = "r" * 64, "w" * 64
    config = FileSystemConfig(
        name="team",
        type="file_system",
        read_secret_sha256=hashlib.sha256(read.encode()).hexdigest(),
        write_secret_sha256=hashlib.sha256(write.encode()).hexdigest().upper(),
    )
    backend = FileSystemBackend(config, tmp_path)
    assert backend.authenticate(write) is Access.WRITE
    assert backend.authenticate(read) is Access.READ
    assert backend.authenticate(config.read_secret_sha256) is Access.NONE
    assert backend.authenticate("") is Access.NONE
    assert config.read_secret_sha256 not in repr(config)
