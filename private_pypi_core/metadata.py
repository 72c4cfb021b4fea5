"""Core metadata (PEP 658): read out of an uploaded wheel or sdist, and parsed for the JSON API.

A wheel's ``<name>-<version>.dist-info/METADATA`` is always served; an sdist's ``PKG-INFO`` only
when its Metadata-Version is 2.2 or newer (PEP 643: older sdists' metadata may be wrong).
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from private_pypi_core.archives import (
    ArchiveOverLimit,
    Budget,
    DamagedArchive,
    open_zip,
    read_tar_gz_member,
    read_zip_member,
)
from private_pypi_core.backend import DistFile
from private_pypi_core.errors import BadRequest

COMPANION_SUFFIX = ".metadata"
MAX_METADATA_BYTES = 16 << 20  # far above any real METADATA; refuses a decompression bomb
RELIABLE_SDIST_METADATA = Version("2.2")


@dataclass(frozen=True)
class CoreMetadata:
    """What a distribution's core metadata gives the index."""

    data: bytes | None  # the file to serve; None for an sdist too old to be trusted
    requires_python: str | None  # from a served file only


def extract_core_metadata(path: Path, dist: DistFile) -> bytes | None:
    """The core metadata file of the distribution at ``path``, or ``None`` for an sdist too
    old to be trusted. ``BadRequest`` when the archive is broken, costs more to read than the
    limits of ``archives`` allow, has no metadata, or its metadata names another project or
    version than the filename."""
    return read_core_metadata(path, dist).data


def read_core_metadata(source: Path | bytes, dist: DistFile) -> CoreMetadata:
    """``extract_core_metadata`` of a path or of the file's bytes, with its
    ``Requires-Python``, parsed once."""
    budget = Budget()
    try:
        if dist.filename.endswith(".whl"):
            data = _wheel_metadata(source, dist, budget)
        elif dist.filename.endswith(".zip"):
            data = _sdist_zip_metadata(source, dist, budget)
        else:
            data = _sdist_tar_metadata(source, dist, budget)
    except ArchiveOverLimit as error:
        raise BadRequest(f"{dist.filename!r} is refused: {error}") from None
    except (DamagedArchive, zipfile.BadZipFile) as error:
        raise BadRequest(f"{dist.filename!r} is not a valid archive: {error}") from None
    fields = parse_metadata(data, dist.filename)
    _check_identity(fields, dist)
    served = CoreMetadata(data, fields.get("requires_python"))
    if dist.filename.endswith(".whl"):
        return served
    try:
        metadata_version = Version(str(fields.get("metadata_version", "1.0")))
    except InvalidVersion:
        return CoreMetadata(None, None)
    return served if metadata_version >= RELIABLE_SDIST_METADATA else CoreMetadata(None, None)


def parse_metadata(data: bytes, filename: str) -> dict[str, Any]:
    """The fields of a METADATA / PKG-INFO file, keyed as ``packaging.metadata.RawMetadata``."""
    # With the email package it parses with, about 2 MB: a worker that reads no upload's
    # metadata does without.
    from packaging.metadata import parse_email

    raw, _ = parse_email(data)
    if "name" not in raw or "version" not in raw:
        raise BadRequest(f"the metadata in {filename!r} lacks a Name or Version.")
    return dict(raw)


def _wheel_metadata(source: Path | bytes, dist: DistFile, budget: Budget) -> bytes:
    with open_zip(source, budget) as wheel:
        candidates = [
            info
            for info in wheel.infolist()
            if len(PurePosixPath(info.filename).parts) == 2
            and info.filename.endswith(".dist-info/METADATA")
        ]
        if len(candidates) != 1:
            raise BadRequest(
                f"{dist.filename!r} is not a valid wheel: it must hold exactly one "
                ".dist-info/METADATA file."
            )
        return read_zip_member(wheel, candidates[0], MAX_METADATA_BYTES, budget)


def _sdist_zip_metadata(source: Path | bytes, dist: DistFile, budget: Budget) -> bytes:
    with open_zip(source, budget) as sdist:
        for info in sdist.infolist():
            if _is_top_pkg_info(info.filename):
                return read_zip_member(sdist, info, MAX_METADATA_BYTES, budget)
    raise BadRequest(f"{dist.filename!r} is not a valid sdist: it has no top-level PKG-INFO.")


def _sdist_tar_metadata(source: Path | bytes, dist: DistFile, budget: Budget) -> bytes:
    data = read_tar_gz_member(source, _is_top_pkg_info, MAX_METADATA_BYTES, budget)
    if data is None:
        raise BadRequest(f"{dist.filename!r} is not a valid sdist: it has no top-level PKG-INFO.")
    return data


def _is_top_pkg_info(name: str) -> bool:
    if not name.endswith("PKG-INFO"):
        return False  # the cheap test first: this runs for every member of an sdist
    parts = PurePosixPath(name).parts
    return len(parts) == 2 and parts[1] == "PKG-INFO"


def _check_identity(fields: dict[str, Any], dist: DistFile) -> None:
    name, version = str(fields["name"]), str(fields["version"])
    if canonicalize_name(name) != dist.project:
        raise BadRequest(
            f"the metadata in {dist.filename!r} names project {name!r}, not {dist.project!r}."
        )
    try:
        same_version = Version(version) == Version(dist.version)
    except InvalidVersion:
        same_version = False
    if not same_version:
        raise BadRequest(
            f"the metadata in {dist.filename!r} names version {version!r}, not {dist.version!r}."
        )
