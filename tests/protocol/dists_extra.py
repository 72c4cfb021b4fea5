"""More distribution files for the protocol tests: rich metadata, sdists of any Metadata-Version,
wheels whose metadata is missing, misnamed or doubled, and archives that are not archives.

``tests/dists.py`` stays as it is; these build the same kind of files with more control.
"""

from __future__ import annotations

import base64
import hashlib
import io
import tarfile
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from packaging.utils import canonicalize_name

WHEEL_FILE = b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"


def module_name(name: str) -> str:
    """The importable module (and filename prefix) of project ``name``."""
    return canonicalize_name(name).replace("-", "_")


def core_metadata(
    name: str,
    version: str,
    *,
    metadata_version: str = "2.1",
    summary: str | None = None,
    requires_python: str | None = None,
    requires_dist: Sequence[str] = (),
    classifiers: Sequence[str] = (),
    project_urls: Mapping[str, str] | None = None,
    description: str | None = None,
) -> str:
    """A METADATA / PKG-INFO file; ``description`` goes in the body, as build backends do."""
    lines = [f"Metadata-Version: {metadata_version}", f"Name: {name}", f"Version: {version}"]
    if summary is not None:
        lines.append(f"Summary: {summary}")
    if requires_python is not None:
        lines.append(f"Requires-Python: {requires_python}")
    lines += [f"Requires-Dist: {requirement}" for requirement in requires_dist]
    lines += [f"Classifier: {classifier}" for classifier in classifiers]
    lines += [f"Project-URL: {label}, {url}" for label, url in (project_urls or {}).items()]
    if description is not None:
        lines.append("Description-Content-Type: text/markdown")
    return "\n".join(lines) + "\n\n" + (description or "")


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def wheel_from_members(directory: Path, filename: str, members: Mapping[str, bytes]) -> Path:
    """A zip named ``filename`` holding exactly ``members`` (no RECORD added)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / filename
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as wheel:
        for member, data in members.items():
            wheel.writestr(member, data)
    return path


def make_rich_wheel(
    directory: Path,
    name: str,
    version: str,
    metadata: str | None = None,
) -> Path:
    """An installable pure-Python wheel of module ``<name>`` (``VERSION`` in it) whose METADATA
    is ``metadata`` (by default the bare ``core_metadata(name, version)``)."""
    module = module_name(name)
    dist_info = f"{module}-{version}.dist-info"
    text = core_metadata(name, version) if metadata is None else metadata
    files = {
        f"{module}/__init__.py": f"VERSION = {version!r}\n".encode(),
        f"{dist_info}/METADATA": text.encode(),
        f"{dist_info}/WHEEL": WHEEL_FILE,
    }
    record = "".join(f"{path},{_record_hash(data)},{len(data)}\n" for path, data in files.items())
    files[f"{dist_info}/RECORD"] = (record + f"{dist_info}/RECORD,,\n").encode()
    return wheel_from_members(directory, f"{module}-{version}-py3-none-any.whl", files)


def make_wheel_without_metadata(directory: Path, name: str, version: str) -> Path:
    """A wheel with a .dist-info folder (WHEEL, RECORD) but no METADATA in it."""
    module = module_name(name)
    dist_info = f"{module}-{version}.dist-info"
    return wheel_from_members(
        directory,
        f"{module}-{version}-py3-none-any.whl",
        {
            f"{module}/__init__.py": b"",
            f"{dist_info}/WHEEL": WHEEL_FILE,
            f"{dist_info}/RECORD": b"",
        },
    )


def make_wheel_with_two_metadata(directory: Path, name: str, version: str) -> Path:
    """A wheel with two top-level .dist-info folders, each with a METADATA naming it."""
    module = module_name(name)
    text = core_metadata(name, version).encode()
    return wheel_from_members(
        directory,
        f"{module}-{version}-py3-none-any.whl",
        {
            f"{module}/__init__.py": b"",
            f"{module}-{version}.dist-info/METADATA": text,
            f"{module}_extra-{version}.dist-info/METADATA": text,
        },
    )


def make_corrupt_wheel(directory: Path, name: str, version: str) -> Path:
    """Bytes that are no zip at all, under a valid wheel filename."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{module_name(name)}-{version}-py3-none-any.whl"
    path.write_bytes(b"PK\x03\x04 this is not really a zip archive " * 8)
    return path


def make_sdist_with_metadata(directory: Path, name: str, version: str, pkg_info: str) -> Path:
    """A ``.tar.gz`` sdist whose PKG-INFO is ``pkg_info`` (see ``core_metadata``)."""
    module = module_name(name)
    base = f"{module}-{version}"
    members = {
        f"{base}/PKG-INFO": pkg_info.encode(),
        f"{base}/pyproject.toml": f'[project]\nname = "{name}"\nversion = "{version}"\n'.encode(),
    }
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{base}.tar.gz"
    with tarfile.open(path, "w:gz") as sdist:
        for member, data in members.items():
            info = tarfile.TarInfo(member)
            info.size = len(data)
            sdist.addfile(info, io.BytesIO(data))
    return path
