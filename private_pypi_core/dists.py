"""Distribution filenames and project names, by ``packaging``'s rules."""

from __future__ import annotations

import functools
import string
from collections.abc import Mapping

from packaging.utils import (
    InvalidName,
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from private_pypi_core.backend import DistFile
from private_pypi_core.errors import BadRequest

SDIST_SUFFIXES = (".tar.gz", ".zip")


# What a distribution filename may hold (PEP 427, PEP 625, PEP 440 versions). packaging checks
# the name and version but not every tag character, and lowercases before validating: this
# keeps control, bidi and lookalike characters, and path separators, out of stored names.
FILENAME_CHARACTERS = frozenset(string.ascii_letters + string.digits + "._-+!")
# File systems allow 255 bytes per name; a stored file also needs room for a companion's suffix
# (".attestations") and a temp file's affixes around it.
MAX_FILENAME_LENGTH = 200


def parse_dist_filename(filename: str) -> DistFile:
    """The project and version a wheel or sdist filename names; ``BadRequest`` otherwise."""
    if len(filename) > MAX_FILENAME_LENGTH:
        raise BadRequest(
            f"invalid filename {filename[:40]!r}...: longer than {MAX_FILENAME_LENGTH} characters"
        )
    if not filename or filename.startswith(".") or not set(filename) <= FILENAME_CHARACTERS:
        raise BadRequest(
            f"invalid filename {filename!r}: a distribution filename has only ASCII letters, "
            "digits and . _ - + ! and does not start with a dot"
        )
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
def release_identity(dist: DistFile) -> tuple[str, Version, frozenset[str]]:
    """What makes a file unique in a release, whatever the spelling of its name: the project,
    the version, and the wheel's tags (or "sdist")."""
    if dist.filename.endswith(".whl"):
        _, _, _, tags = parse_wheel_filename(dist.filename)
        return dist.project, Version(dist.version), frozenset(str(tag) for tag in tags)
    return dist.project, Version(dist.version), frozenset({"sdist"})


def normalize_project(name: str) -> str:
    """The PEP 503 normalised form of a project name."""
    return canonicalize_name(name)


def validate_project(name: str) -> str:
    """The normalised form of a valid project name (PEP 508); ``BadRequest`` otherwise."""
    if len(name) > MAX_FILENAME_LENGTH:
        raise BadRequest(f"{name[:40]!r}... is not a valid project name: it is too long.")
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


def urls_for(table: Mapping[str, list[str]], project: str) -> list[str]:
    """The URLs a config table by project name (PEP 708's ``tracks``, ``alternate_locations``)
    gives the normalised ``project``, under whatever spelling the table names it."""
    return next((urls for name, urls in table.items() if normalize_project(name) == project), [])
