"""Real, installable distribution files built on the fly (no build backend needed)."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import tarfile
import zipfile
from pathlib import Path

from packaging.utils import canonicalize_name

WHEEL_DATE = (2026, 1, 1, 0, 0, 0)


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def metadata(
    name: str, version: str, requires_python: str | None = None, requires: tuple[str, ...] = ()
) -> str:
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    if requires_python:
        lines.append(f"Requires-Python: {requires_python}")
    lines += [f"Requires-Dist: {requirement}" for requirement in requires]
    return "\n".join(lines) + "\n\n"


def make_wheel(
    directory: Path,
    name: str,
    version: str,
    *,
    requires_python: str | None = None,
    payload: str = "",
    requires: tuple[str, ...] = (),
) -> Path:
    """A pure-Python wheel whose module ``<name>`` has ``VERSION`` (and ``payload``), which
    depends on ``requires``."""
    module = canonicalize_name(name).replace("-", "_")
    dist_info = f"{module}-{version}.dist-info"
    files = {
        f"{module}/__init__.py": f"VERSION = {version!r}\nPAYLOAD = {payload!r}\n".encode(),
        f"{dist_info}/METADATA": metadata(name, version, requires_python, requires).encode(),
        f"{dist_info}/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = "".join(f"{path},{_record_hash(data)},{len(data)}\n" for path, data in files.items())
    record += f"{dist_info}/RECORD,,\n"
    path = directory / f"{module}-{version}-py3-none-any.whl"
    directory.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as wheel:
        # A fixed date: the same wheel built twice is the same bytes, whatever the clock.
        for member, data in [*files.items(), (f"{dist_info}/RECORD", record.encode())]:
            wheel.writestr(
                zipfile.ZipInfo(member, date_time=WHEEL_DATE), data, zipfile.ZIP_DEFLATED
            )
    return path


def make_sdist(directory: Path, name: str, version: str) -> Path:
    """A source distribution with PKG-INFO and a pyproject.toml."""
    module = canonicalize_name(name).replace("-", "_")
    base = f"{module}-{version}"
    members = {
        f"{base}/PKG-INFO": metadata(name, version).encode(),
        f"{base}/pyproject.toml": (f'[project]\nname = "{name}"\nversion = "{version}"\n').encode(),
    }
    path = directory / f"{base}.tar.gz"
    directory.mkdir(parents=True, exist_ok=True)
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w") as sdist:
        for member, data in members.items():
            info = tarfile.TarInfo(member)  # mtime 0: the same sdist built twice is the same
            info.size = len(data)
            sdist.addfile(info, io.BytesIO(data))
    path.write_bytes(gzip.compress(tar.getvalue(), mtime=0))
    return path
