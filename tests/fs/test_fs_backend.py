from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from private_pypi_core.dists import parse_dist_filename
from private_pypi_core.plugins import installed_backends
from private_pypi_core.testing import BackendConformance, BackendUnderTest
from private_pypi_fs.backend import FileSystemBackend, FileSystemConfig


def make_backend(root: Path, **settings: str) -> FileSystemBackend:
    config = FileSystemConfig(
        name="team", type="file_system", read_secret="r-secret", write_secret="w-secret", **settings
    )
    return FileSystemBackend(config, root)


def unmounted_backend(root: Path) -> FileSystemBackend:
    """A backend whose storage folder is gone, a plain file in its place (a share unmounted,
    a disk failed)."""
    backend = make_backend(root)
    shutil.rmtree(backend.storage)
    backend.storage.write_bytes(b"")
    return backend


class TestFileSystemBackend(BackendConformance):
    @pytest.fixture
    def subject(self, tmp_path: Path) -> Iterator[BackendUnderTest]:
        yield BackendUnderTest(
            make_backend(tmp_path / "root"), broken=lambda: unmounted_backend(tmp_path / "gone")
        )


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


def test_relative_storage_path_is_under_root(tmp_path: Path) -> None:
    backend = make_backend(tmp_path / "root", storage_path="packages/team")
    backend.write_index(b"format = 1\n", replaces=None)
    assert (tmp_path / "root" / "packages" / "team" / "index.json").read_bytes() == b"format = 1\n"


def test_storage_path_setting_moves_the_store(tmp_path: Path) -> None:
    backend = make_backend(tmp_path / "root", storage_path=str(tmp_path / "elsewhere"))
    backend.write_index(b"format = 1\n", replaces=None)
    assert (tmp_path / "elsewhere" / "index.json").read_bytes() == b"format = 1\n"


def test_failed_write_leaves_no_partial_file(tmp_path: Path) -> None:
    backend = make_backend(tmp_path)
    dist = parse_dist_filename("demo-1.0.tar.gz")
    with pytest.raises(FileNotFoundError):
        backend.write_file(dist, tmp_path / "missing-source")
    project_dir = tmp_path / "cache" / "team" / "storage" / "demo"
    assert not project_dir.exists() or os.listdir(project_dir) == []
    assert list(backend.list_files()) == []
