"""Valid wheels and sdists for the benchmark, generated once into a cache directory.

Project ``i`` is always the same 10 files (5 versions x wheel + sdist), so a corpus of 200
projects is the first 200 of the corpus of 2000 and both share one cache.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import random
import shutil
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

VERSIONS = [f"1.0.{minor}" for minor in range(5)]
DATE_TIME = (2024, 1, 1, 0, 0, 0)
BLOCK = 1 << 20


@dataclass(frozen=True)
class BigFile:
    """A large wheel: its project, version, path and sha256."""

    project: str
    version: str
    path: Path
    sha256: str


@dataclass(frozen=True)
class Corpus:
    """The first ``len(projects)`` projects of the cache, plus the two large wheels."""

    cache: Path
    projects: list[str]
    download: BigFile
    upload: BigFile

    def files(self) -> Iterator[tuple[str, Path]]:
        """(project, path) of every small file of the corpus."""
        for project in self.projects:
            for path in sorted(project_dir(self.cache, project).iterdir()):
                yield project, path


def project_name(index: int) -> str:
    """The (already normalised) name of project ``index``."""
    return f"bench-{index:05d}"


def project_dir(cache: Path, project: str) -> Path:
    return cache / "projects" / project


def ensure_corpus(cache: Path, projects: int, download_mb: int, upload_mb: int) -> Corpus:
    """The corpus of ``projects`` projects, generating whatever the cache lacks."""
    names = [project_name(index) for index in range(projects)]
    for name in names:
        if not project_dir(cache, name).is_dir():
            _write_project(cache, name)
    return Corpus(
        cache=cache,
        projects=names,
        download=ensure_big(cache, "bench-download", download_mb),
        upload=ensure_big(cache, "bench-upload", upload_mb),
    )


def _write_project(cache: Path, project: str) -> None:
    """Write a project's files to a temp dir, then rename it into place (atomic per project)."""
    final = project_dir(cache, project)
    temp = final.with_name(f".{project}.tmp")
    shutil.rmtree(temp, ignore_errors=True)
    temp.mkdir(parents=True)
    for version in VERSIONS:
        module = project.replace("-", "_")
        payload = {f"{module}/__init__.py": f"VERSION = {version!r}\n".encode()}
        _write_wheel(temp / f"{module}-{version}-py3-none-any.whl", project, version, payload)
        _write_sdist(temp / f"{module}-{version}.tar.gz", project, version)
    temp.rename(final)


def _metadata(name: str, version: str) -> bytes:
    return f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\n".encode()


def _record_hash(digest: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _zip_info(name: str, compress_type: int = zipfile.ZIP_DEFLATED) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=DATE_TIME)
    info.compress_type = compress_type
    info.external_attr = 0o644 << 16
    return info


def wheel_bytes(name: str, version: str, files: dict[str, bytes]) -> bytes:
    """A small pure-Python wheel of ``files``, built in memory."""
    buffer = io.BytesIO()
    _write_wheel(buffer, name, version, files)
    return buffer.getvalue()


def _write_wheel(
    target: Path | BinaryIO,
    name: str,
    version: str,
    files: dict[str, bytes],
    big: tuple[str, int] | None = None,
) -> None:
    """A pure-Python wheel of ``files``; ``big`` adds a stored member of that many bytes."""
    module = name.replace("-", "_")
    dist_info = f"{module}-{version}.dist-info"
    members = {
        **files,
        f"{dist_info}/METADATA": _metadata(name, version),
        f"{dist_info}/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: bench\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = [
        f"{member},{_record_hash(hashlib.sha256(data).digest())},{len(data)}"
        for member, data in members.items()
    ]
    with zipfile.ZipFile(target, "w") as wheel:
        if big is not None:
            member, size = big
            record.append(f"{member},{_write_big_member(wheel, member, size)},{size}")
        for member, data in members.items():
            wheel.writestr(_zip_info(member), data)
        record.append(f"{dist_info}/RECORD,,")
        wheel.writestr(_zip_info(f"{dist_info}/RECORD"), "\n".join(record) + "\n")


def _write_big_member(wheel: zipfile.ZipFile, member: str, size: int) -> str:
    """Stream ``size`` incompressible bytes into a stored member; its RECORD hash."""
    block = random.Random(size).randbytes(BLOCK)
    digest = hashlib.sha256()
    with wheel.open(_zip_info(member, zipfile.ZIP_STORED), "w", force_zip64=True) as out:
        left = size
        while left:
            chunk = block[: min(left, BLOCK)]
            out.write(chunk)
            digest.update(chunk)
            left -= len(chunk)
    return _record_hash(digest.digest())


def _write_sdist(path: Path, name: str, version: str) -> None:
    base = path.name.removesuffix(".tar.gz")
    members = {
        f"{base}/PKG-INFO": _metadata(name, version),
        f"{base}/pyproject.toml": f'[project]\nname = "{name}"\nversion = "{version}"\n'.encode(),
    }
    with tarfile.open(path, "w:gz") as sdist:
        for member, data in members.items():
            info = tarfile.TarInfo(member)
            info.size = len(data)
            info.mtime = 1704067200
            sdist.addfile(info, io.BytesIO(data))


def ensure_big(cache: Path, project: str, megabytes: int) -> BigFile:
    """A wheel of about ``megabytes`` MB (10**6 bytes), version ``<megabytes>``."""
    version = str(megabytes)
    module = project.replace("-", "_")
    path = cache / "big" / f"{module}-{version}-py3-none-any.whl"
    sidecar = path.with_name(path.name + ".sha256")
    if not sidecar.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f".{path.name}.tmp")
        payload = {f"{module}/__init__.py": b""}
        _write_wheel(temp, project, version, payload, big=(f"{module}/data.bin", megabytes * 10**6))
        os.replace(temp, path)
        sidecar.write_text(_sha256_file(path))
    return BigFile(project=project, version=version, path=path, sha256=sidecar.read_text())


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(BLOCK):
            digest.update(chunk)
    return digest.hexdigest()
