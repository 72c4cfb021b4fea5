"""Sets of small wheels made in bulk: the files of the upload runs and those that fill an index.

A set is ``count`` wheels of a few KB, 10 versions per project, cached under
``<cache>/<kind>/<project>/`` like the corpus: project ``i`` is always the same files, so a
smaller set is a prefix of a larger one. 100,000 of them take a while to write, so the
missing projects are written by a process per core.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import random
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bench.corpus import wheel_bytes

VERSIONS_PER_PROJECT = 10
PAYLOAD_BYTES = 2000  # incompressible: each wheel ~3 KB, one 4 KB block on disk
PROJECTS_PER_TASK = 200


@dataclass(frozen=True)
class SmallWheel:
    """One wheel of a set: its project (normalised), version and path."""

    project: str
    version: str
    path: Path

    def sha256(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class WheelSet:
    """The first ``count`` wheels of ``<cache>/<kind>``, project by project."""

    cache: Path
    kind: str
    count: int

    def wheels(self) -> list[SmallWheel]:
        return [
            SmallWheel(project, version, _wheel_path(self.cache, self.kind, project, version))
            for project, version in _names(self.kind, self.count)
        ]


def ensure_wheel_set(cache: Path, kind: str, count: int) -> WheelSet:
    """The set of ``count`` wheels named ``bench-<kind>-<i>``, writing the missing projects."""
    projects = -(-count // VERSIONS_PER_PROJECT)
    missing = [
        index for index in range(projects) if not (cache / kind / _project(kind, index)).is_dir()
    ]
    chunks = [
        missing[start : start + PROJECTS_PER_TASK]
        for start in range(0, len(missing), PROJECTS_PER_TASK)
    ]
    if len(chunks) > 1:
        # spawn: the caller may have threads, and fork would copy them half-way
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(os.cpu_count() or 1, mp_context=context) as pool:
            list(pool.map(_write_projects, [cache] * len(chunks), [kind] * len(chunks), chunks))
    elif chunks:
        _write_projects(cache, kind, chunks[0])
    return WheelSet(cache=cache, kind=kind, count=count)


def _project(kind: str, index: int) -> str:
    return f"bench-{kind}-{index:06d}"


def _version(index: int) -> str:
    return f"2.0.{index}"


def _names(kind: str, count: int) -> list[tuple[str, str]]:
    return [
        (_project(kind, index // VERSIONS_PER_PROJECT), _version(index % VERSIONS_PER_PROJECT))
        for index in range(count)
    ]


def _wheel_path(cache: Path, kind: str, project: str, version: str) -> Path:
    return cache / kind / project / f"{project.replace('-', '_')}-{version}-py3-none-any.whl"


def _write_projects(cache: Path, kind: str, indexes: list[int]) -> None:
    """Write each project to a temp dir, then rename it into place (atomic per project)."""
    for index in indexes:
        project = _project(kind, index)
        final = cache / kind / project
        temp = final.with_name(f".{project}.tmp")
        shutil.rmtree(temp, ignore_errors=True)
        temp.mkdir(parents=True)
        module = project.replace("-", "_")
        for minor in range(VERSIONS_PER_PROJECT):
            version = _version(minor)
            payload = random.Random(f"{project}-{version}").randbytes(PAYLOAD_BYTES)
            files = {f"{module}/__init__.py": b"", f"{module}/data.bin": payload}
            wheel = _wheel_path(cache, kind, project, version)
            (temp / wheel.name).write_bytes(wheel_bytes(project, version, files))
        temp.rename(final)
