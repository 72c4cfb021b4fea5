"""Distribution filenames and project names, by ``packaging``'s rules."""

from __future__ import annotations

import functools

from packaging.utils import (
    InvalidName,
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion

from private_pypi_core.backend import DistFile
from private_pypi_core.errors import BadRequest

SDIST_SUFFIXES = (".tar.gz", ".zip")


def parse_dist_filename(filename: str) -> DistFile:
    """The project and version a wheel or sdist filename names; ``BadRequest`` otherwise."""
    if "/" in filename or "\\" in filename or filename in {"", ".", ".."}:
        raise BadRequest(f"invalid filename {filename!r}: it must be a bare file name")
    try:
        if filename.endswith(".whl"):
            name, version, _, _ = parse_wheel_filename(filename)
        elif filename.endswith(SDIST_SUFFIXES):
            name, version = parse_sdist_filename(filename)
        else:
            raise BadRequest(
                f"invalid filename {filename!r}: expected a wheel (.whl) "
                "or an sdist (.tar.gz or .zip)"
            )
        project = canonicalize_name(name, validate=True)
    except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion, InvalidName) as error:
        raise BadRequest(f"invalid filename {filename!r}: {error}") from None
    return DistFile(filename=filename, project=project, version=str(version))


@functools.lru_cache(maxsize=1 << 16)  # every page request normalises its project
def normalize_project(name: str) -> str:
    """The PEP 503 normalised form of a project name."""
    return canonicalize_name(name)


def validate_project(name: str) -> str:
    """The normalised form of a valid project name (PEP 508); ``BadRequest`` otherwise."""
    try:
        return canonicalize_name(name, validate=True)
    except InvalidName:
        raise BadRequest(f"{name!r} is not a valid project name.") from None


def content_type(filename: str) -> str:
    """The media type to serve a distribution file with (never an encoding: see ``.tar.gz``)."""
    if filename.endswith(".tar.gz"):
        return "application/x-tar"
    if filename.endswith((".whl", ".zip")):
        return "application/zip"
    return "application/octet-stream"
