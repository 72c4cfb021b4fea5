"""``build_index`` (what ``update_index`` runs): it reads only what changed, and gives the same
index whether files are inspected in this process or in a process per core."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import BinaryIO

import pytest

from private_pypi_core import index
from private_pypi_core.backend import DistFile
from private_pypi_core.index import PackageIndex, build_index
from private_pypi_core.progress import Progress
from private_pypi_fs.backend import FileSystemBackend, FileSystemConfig
from tests.dists import make_sdist, make_wheel


class CountingBackend(FileSystemBackend):
    """The fs backend, counting the stored files it is asked to open."""

    opened: list[str]

    def open_file(self, dist: DistFile) -> BinaryIO:
        self.opened.append(dist.filename)
        return super().open_file(dist)


class Counted(Progress):
    def __init__(self) -> None:
        self.total = self.done = 0

    def add_total(self, count: int) -> None:
        self.total += count

    def advance(self, count: int = 1) -> None:
        self.done += count


def store(backend: FileSystemBackend, source: Path) -> Path:
    project = source.name.split("-")[0].replace("_", "-")
    folder = backend.storage / project
    folder.mkdir(parents=True, exist_ok=True)
    (folder / source.name).write_bytes(source.read_bytes())
    return folder / source.name


@pytest.fixture
def backend(tmp_path: Path) -> CountingBackend:
    counting = CountingBackend(FileSystemConfig(name="team", type="file_system"), tmp_path / "root")
    counting.opened = []
    return counting


def fill(backend: FileSystemBackend, dist_dir: Path, projects: int) -> list[Path]:
    stored = []
    for number in range(projects):
        name = f"pkg{number}"
        stored.append(store(backend, make_wheel(dist_dir, name, "1.0", requires_python=">=3.9")))
        stored.append(store(backend, make_sdist(dist_dir, name, "1.0")))
    return stored


def test_a_second_run_reads_no_file_and_a_new_file_alone_is_read(
    backend: CountingBackend, tmp_path: Path
) -> None:
    fill(backend, tmp_path / "dist", 5)
    first = build_index(backend, PackageIndex())
    assert len(first.entries) == 10
    # Wheels' metadata is served; these sdists' (Metadata-Version 2.1) is not to be trusted,
    # and the second run does not read them again to find out.
    assert all(
        bool(entry.metadata_sha256) == name.endswith(".whl")
        for name, entry in first.entries.items()
    )

    backend.opened.clear()
    progress = Counted()
    again = build_index(backend, first, progress=progress)
    assert again == first
    assert backend.opened == []
    assert progress.total == 0

    new = store(backend, make_wheel(tmp_path / "dist", "pkg9", "2.0"))
    third = build_index(backend, again, progress=progress)
    assert backend.opened == [new.name]
    assert progress.total == progress.done == 1
    assert third.entries[new.name].sha256 == hashlib.sha256(new.read_bytes()).hexdigest()
    assert {name: third.entries[name] for name in first.entries} == first.entries


def test_a_file_replaced_by_one_of_another_size_is_read_again(
    backend: CountingBackend, tmp_path: Path
) -> None:
    stored = fill(backend, tmp_path / "dist", 2)
    first = build_index(backend, PackageIndex())
    wheel = stored[0]
    wheel.with_name(wheel.name + ".metadata").unlink()
    wheel.write_bytes(make_wheel(tmp_path / "other", "pkg0", "1.0", payload="x" * 999).read_bytes())
    backend.opened.clear()
    rebuilt = build_index(backend, first)
    assert wheel.name in backend.opened
    assert rebuilt.entries[wheel.name].sha256 == hashlib.sha256(wheel.read_bytes()).hexdigest()
    assert rebuilt.entries[wheel.name].size == wheel.stat().st_size


def test_inspecting_in_processes_gives_the_index_of_inspecting_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def indexed(root: Path, process_min_files: int) -> PackageIndex:
        monkeypatch.setattr(index, "PROCESS_MIN_FILES", process_min_files)
        monkeypatch.setattr(index, "BATCH_FILES", 7)  # several batches, some in flight at once
        fs = FileSystemBackend(FileSystemConfig(name="team", type="file_system"), root)
        fill(fs, tmp_path / "dist", 20)
        broken = fs.storage / "pkg0" / "pkg0-3.0-py3-none-any.whl"
        broken.write_bytes(b"not a zip")
        progress = Counted()
        built = build_index(fs, PackageIndex(), progress=progress)
        assert progress.done == progress.total == 41
        return built

    def contents(built: PackageIndex) -> dict[str, tuple[object, ...]]:
        return {
            name: (e.sha256, e.md5, e.blake2b_256, e.metadata_sha256, e.requires_python, e.size)
            for name, e in built.entries.items()
        }

    here = indexed(tmp_path / "here", process_min_files=10**9)
    in_processes = indexed(tmp_path / "processes", process_min_files=1)
    assert contents(here) == contents(in_processes)
    assert here.entries["pkg0-3.0-py3-none-any.whl"].metadata_sha256 is None
    assert here.entries["pkg0-1.0-py3-none-any.whl"].requires_python == ">=3.9"
