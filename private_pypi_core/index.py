"""The package index: every published file of a repository, and its TOML file format.

The same format is used for the remote index file in a backend and the server's local copy::

    format = 1

    [files."demo_pkg-1.0-py3-none-any.whl"]
    project = "demo-pkg"
    version = "1.0"
    sha256 = "..."
    size = 1234
    upload_time = 2026-11-26T09:00:00Z
    requires_python = ">=3.9"
"""

from __future__ import annotations

import hashlib
import logging
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

import tomli_w

from private_pypi_core.backend import Backend, DistFile, IndexFile
from private_pypi_core.dists import parse_dist_filename
from private_pypi_core.errors import BadRequest, ConfigError

FORMAT_VERSION = 1
HASH_CHUNK_BYTES = 1 << 20
COMPANION_SUFFIXES = (".metadata",)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IndexEntry:
    """One published distribution file."""

    filename: str
    project: str
    version: str
    sha256: str
    size: int
    upload_time: datetime
    requires_python: str | None = None

    @property
    def dist(self) -> DistFile:
        return DistFile(filename=self.filename, project=self.project, version=self.version)


@dataclass(frozen=True)
class PackageIndex:
    """An immutable snapshot of a repository's index; changes return a new snapshot."""

    entries: Mapping[str, IndexEntry] = field(default_factory=dict)  # by filename

    @cached_property
    def projects(self) -> dict[str, list[IndexEntry]]:
        """Entries by normalised project name, projects and files sorted by name."""
        grouped: dict[str, list[IndexEntry]] = {}
        for entry in sorted(self.entries.values(), key=lambda e: e.filename):
            grouped.setdefault(entry.project, []).append(entry)
        return dict(sorted(grouped.items()))

    def with_entry(self, entry: IndexEntry) -> PackageIndex:
        return PackageIndex({**self.entries, entry.filename: entry})

    def to_toml(self) -> bytes:
        files = {}
        for filename, entry in sorted(self.entries.items()):
            table: dict[str, Any] = {
                "project": entry.project,
                "version": entry.version,
                "sha256": entry.sha256,
                "size": entry.size,
                "upload_time": entry.upload_time,
            }
            if entry.requires_python:
                table["requires_python"] = entry.requires_python
            files[filename] = table
        return tomli_w.dumps({"format": FORMAT_VERSION, "files": files}).encode()

    @classmethod
    def from_toml(cls, data: bytes, *, label: str) -> PackageIndex:
        """Parse an index file; ``ConfigError`` names ``label`` when it is unusable."""
        try:
            document = tomllib.loads(data.decode())
            if document.get("format") != FORMAT_VERSION:
                raise ConfigError(f"{label}: unsupported index format {document.get('format')!r}")
            return cls({name: _entry(name, table) for name, table in document["files"].items()})
        except (UnicodeDecodeError, tomllib.TOMLDecodeError, KeyError, TypeError) as error:
            raise ConfigError(f"{label}: not a valid index file: {error}") from None


def _entry(filename: str, table: Mapping[str, Any]) -> IndexEntry:
    upload_time = table["upload_time"]
    if not isinstance(upload_time, datetime):
        raise TypeError(f"upload_time of {filename!r} is not a datetime")
    return IndexEntry(
        filename=filename,
        project=table["project"],
        version=table["version"],
        sha256=table["sha256"],
        size=table["size"],
        upload_time=upload_time if upload_time.tzinfo else upload_time.replace(tzinfo=UTC),
        requires_python=table.get("requires_python"),
    )


def build_index(backend: Backend, previous: PackageIndex) -> PackageIndex:
    """The index of what ``backend`` stores now.

    Entries of ``previous`` are kept for files still stored with the same size (they hold what
    only the upload knew, such as ``requires_python``); other files are hashed from storage.
    """
    entries = {}
    for stored in backend.list_files():
        if stored.filename.endswith(COMPANION_SUFFIXES):
            continue
        try:
            dist = parse_dist_filename(stored.filename)
        except BadRequest as error:
            log.warning("skipping a stored file that is not a distribution: %s", error)
            continue
        known = previous.entries.get(stored.filename)
        if known is not None and known.size == stored.size:
            entries[stored.filename] = known
            continue
        entries[stored.filename] = IndexEntry(
            filename=stored.filename,
            project=dist.project,
            version=dist.version,
            sha256=stored.sha256 or sha256_of(backend, dist),
            size=stored.size,
            upload_time=stored.upload_time,
        )
    return PackageIndex(entries)


def sha256_of(backend: Backend, dist: DistFile) -> str:
    """The sha256 of a stored file, read from the store."""
    digest = hashlib.sha256()
    with backend.open_file(dist) as stream:
        while chunk := stream.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def index_from_remote(remote: IndexFile | None, *, label: str) -> PackageIndex:
    return PackageIndex() if remote is None else PackageIndex.from_toml(remote.data, label=label)
