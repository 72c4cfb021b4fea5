"""The package index: every published file of a repository, and its file format.

The same JSON document is the remote index file in a backend and the server's local copy
(JSON rather than TOML: at 100,000 files the standard library parses it in well under a
second, where tomllib takes about nine)::

    {"format": 1, "files": {
      "demo_pkg-1.0-py3-none-any.whl": {
        "project": "demo-pkg", "version": "1.0", "sha256": "...", "size": 1234,
        "upload_time": "2026-11-26T09:00:00.123456+00:00",
        "requires_python": ">=3.9",       optional keys from here on
        "md5": "...", "blake2b_256": "...",
        "metadata_sha256": "...",         the core metadata is stored as "<filename>.metadata"
        "yanked": "broken build",         PEP 592; "" when yanked without a reason
        "attestations_sha256": "...",     PEP 740: kept as uploaded in "<filename>.attestations"
        "publisher": {"kind": "GitHub", ...}   the trusted publisher that uploaded it
      }}}

A repository with API tokens (``tokens.py``) has format 2, where ``"tokens"`` maps each token's
id to its record (its secret's sha256, scopes, projects, dates, note). Format 3 adds
``"projects"``, each project's PEP 792 status when it is not ``active``
(``{"demo-pkg": {"status": "archived", "reason": "..."}}``), and the files' two PEP 740 keys.
Each file is written in the lowest format that holds what it has: a server that knows only an
older one refuses the file rather than rewrite it without them (and, say, serve a quarantined
project again).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

from packaging.version import Version

from private_pypi_core.backend import Backend, DistFile, FileExists, IndexFile, StoredFile
from private_pypi_core.dists import parse_dist_filename
from private_pypi_core.errors import BadRequest, ConfigError
from private_pypi_core.hashing import CHUNK_BYTES, file_hashes, stream_hashes
from private_pypi_core.metadata import COMPANION_SUFFIX, extract_core_metadata, parse_metadata
from private_pypi_core.tokens import TokenRecord

FORMAT_VERSION = 1
TOKENS_FORMAT_VERSION = 2
STATUS_FORMAT_VERSION = 3  # project statuses (PEP 792), the files' PEP 740 keys
FORMATS = (FORMAT_VERSION, TOKENS_FORMAT_VERSION, STATUS_FORMAT_VERSION)
ATTESTATIONS_SUFFIX = ".attestations"  # the upload's PEP 740 attestations, as sent
COMPANION_SUFFIXES = (COMPANION_SUFFIX, ATTESTATIONS_SUFFIX)
STATUSES = ("active", "archived", "quarantined", "deprecated")  # PEP 792
MAX_REASON_CHARS = 500

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IndexEntry:
    """One published distribution file."""

    filename: str
    project: str  # normalised
    version: str
    sha256: str
    size: int
    upload_time: datetime
    requires_python: str | None = None
    md5: str | None = None
    blake2b_256: str | None = None
    metadata_sha256: str | None = None  # set when "<filename>.metadata" is stored
    yanked: str | None = None  # None: not yanked; otherwise the reason, possibly ""
    attestations_sha256: str | None = None  # set when "<filename>.attestations" is stored
    # The PEP 740 publisher object of the trusted publisher that uploaded the file, if one did.
    publisher: Mapping[str, Any] | None = field(default=None, hash=False)

    @property
    def dist(self) -> DistFile:
        return DistFile(filename=self.filename, project=self.project, version=self.version)

    @property
    def metadata_dist(self) -> DistFile:
        return self.dist.companion(COMPANION_SUFFIX)

    @property
    def attestations_dist(self) -> DistFile:
        return self.dist.companion(ATTESTATIONS_SUFFIX)

    @cached_property
    def parsed_version(self) -> Version:
        return Version(self.version)


@dataclass(frozen=True)
class ProjectStatus:
    """A project's status marker (PEP 792) and the reason given for it; ``ValueError`` says
    what is wrong with either."""

    status: str = "active"
    reason: str = ""

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(
                f"{self.status!r} is not a project status: one of {', '.join(STATUSES)}"
            )
        if not isinstance(self.reason, str) or len(self.reason) > MAX_REASON_CHARS:
            raise ValueError(f"a status reason is text of at most {MAX_REASON_CHARS} characters")
        if not self.reason.isprintable():
            raise ValueError("a status reason is one line of printable characters")

    @property
    def accepts_uploads(self) -> bool:
        """Archived and quarantined projects take no new files."""
        return self.status in ("active", "deprecated")

    @property
    def serves_files(self) -> bool:
        """A quarantined project offers none of its files."""
        return self.status != "quarantined"


ACTIVE = ProjectStatus()


@dataclass(frozen=True)
class PackageIndex:
    """An immutable snapshot of a repository's index; changes return a new snapshot."""

    entries: Mapping[str, IndexEntry] = field(default_factory=dict)  # by filename
    tokens: Mapping[str, TokenRecord] = field(default_factory=dict)  # by id
    statuses: Mapping[str, ProjectStatus] = field(default_factory=dict)  # by project, not active

    @cached_property
    def projects(self) -> dict[str, list[IndexEntry]]:
        """Entries by normalised project name, projects and files sorted by name."""
        grouped: dict[str, list[IndexEntry]] = {}
        for entry in sorted(self.entries.values(), key=lambda e: e.filename):
            grouped.setdefault(entry.project, []).append(entry)
        return dict(sorted(grouped.items()))

    def with_entry(self, entry: IndexEntry) -> PackageIndex:
        return self.with_entries([entry])

    def with_entries(self, entries: Iterable[IndexEntry]) -> PackageIndex:
        return dataclasses.replace(
            self, entries={**self.entries, **{e.filename: e for e in entries}}
        )

    def with_token(self, token: TokenRecord) -> PackageIndex:
        return dataclasses.replace(self, tokens={**self.tokens, token.id: token})

    def without_token(self, token_id: str) -> PackageIndex:
        tokens = {k: v for k, v in self.tokens.items() if k != token_id}
        return dataclasses.replace(self, tokens=tokens)

    def status_of(self, project: str) -> ProjectStatus:
        """The status of a normalised project name: ``active`` unless one was set."""
        return self.statuses.get(project, ACTIVE)

    def with_status(self, project: str, status: ProjectStatus) -> PackageIndex:
        """``project``'s status set; ``active`` is kept as no status at all."""
        statuses = {k: v for k, v in self.statuses.items() if k != project}
        if status.status != ACTIVE.status:
            statuses[project] = status
        return dataclasses.replace(self, statuses=statuses)

    def to_bytes(self) -> bytes:
        """The index file, in the lowest format that holds it: one line per file, token and
        status, so a change reads as a one-line diff."""
        compact = json.JSONEncoder(separators=(",", ":")).encode

        def table(key: str, rows: dict[str, Any]) -> str:
            lines = ",\n".join(f"{compact(k)}:{compact(v)}" for k, v in sorted(rows.items()))
            return f'"{key}":{{\n{lines}\n}}'

        files = {filename: _record(entry) for filename, entry in self.entries.items()}
        parts = [table("files", files)]
        if self.tokens:
            parts.append(table("tokens", {k: t.to_json() for k, t in self.tokens.items()}))
        if self.statuses:
            statuses = {project: _status_record(s) for project, s in self.statuses.items()}
            parts.append(table("projects", statuses))
        if self.statuses or any(_has_provenance(record) for record in files.values()):
            version = STATUS_FORMAT_VERSION
        else:
            version = TOKENS_FORMAT_VERSION if self.tokens else FORMAT_VERSION
        return f'{{"format":{version},{",".join(parts)}}}\n'.encode()

    @classmethod
    def from_bytes(cls, data: bytes, *, label: str) -> PackageIndex:
        """Parse an index file; ``ConfigError`` names ``label`` when it is unusable."""
        try:
            document = json.loads(data)
            if document.get("format") not in FORMATS:
                raise ConfigError(f"{label}: unsupported index format {document.get('format')!r}")
            return cls(
                {name: _entry(name, record) for name, record in document["files"].items()},
                {
                    token_id: TokenRecord.from_json(token_id, record)
                    for token_id, record in document.get("tokens", {}).items()
                },
                {
                    project: _status(record)
                    for project, record in document.get("projects", {}).items()
                },
            )
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise ConfigError(f"{label}: not a valid index file: {error}") from None


OPTIONAL_FIELDS = tuple(
    f.name for f in dataclasses.fields(IndexEntry) if f.default is not dataclasses.MISSING
)


def _record(entry: IndexEntry) -> dict[str, Any]:
    record: dict[str, Any] = {
        "project": entry.project,
        "version": entry.version,
        "sha256": entry.sha256,
        "size": entry.size,
        "upload_time": entry.upload_time.isoformat(),
    }
    for name in OPTIONAL_FIELDS:
        value = getattr(entry, name)
        if value is not None:
            record[name] = value
    return record


def _has_provenance(record: Mapping[str, Any]) -> bool:
    return "attestations_sha256" in record or "publisher" in record


def _status_record(status: ProjectStatus) -> dict[str, str]:
    return {"status": status.status, "reason": status.reason}


def _status(record: Mapping[str, Any]) -> ProjectStatus:
    return ProjectStatus(record["status"], record.get("reason", ""))


def _entry(filename: str, record: Mapping[str, Any]) -> IndexEntry:
    upload_time = datetime.fromisoformat(record["upload_time"])
    return IndexEntry(
        filename,
        record["project"],
        record["version"],
        record["sha256"],
        record["size"],
        upload_time if upload_time.tzinfo else upload_time.replace(tzinfo=UTC),
        *(record.get(name) for name in OPTIONAL_FIELDS),
    )


def build_index(backend: Backend, previous: PackageIndex) -> PackageIndex:
    """The index of what ``backend`` stores now.

    Entries of ``previous`` are kept for files still stored with the same size (they hold what
    only the upload knew, such as a yank); other files are hashed from storage. Core metadata
    is advertised exactly when it is stored: missing metadata is extracted and stored beside
    its file (files uploaded before metadata was served), a stored one is picked up.
    """
    stored = {f.filename: f for f in backend.list_files()}
    entries = {}
    for filename, stored_file in stored.items():
        if filename.endswith(COMPANION_SUFFIXES):
            continue
        try:
            dist = parse_dist_filename(filename)
        except BadRequest as error:
            log.warning("skipping a stored file that is not a distribution: %s", error)
            continue
        known = previous.entries.get(filename)
        has_metadata = filename + COMPANION_SUFFIX in stored
        if known is None or known.size != stored_file.size:
            entries[filename] = _entry_from_storage(backend, dist, stored_file, has_metadata)
        elif has_metadata and known.metadata_sha256:
            entries[filename] = known
        else:
            entries[filename] = _with_metadata(backend, known, has_metadata)
        has_attestations = filename + ATTESTATIONS_SUFFIX in stored
        if has_attestations != bool(entries[filename].attestations_sha256):
            entries[filename] = _with_attestations(backend, entries[filename], has_attestations)
    return PackageIndex(entries, previous.tokens, previous.statuses)


def _with_attestations(backend: Backend, entry: IndexEntry, stored: bool) -> IndexEntry:
    """``entry`` advertising the attestations stored beside it, or none."""
    if not stored:
        return dataclasses.replace(entry, attestations_sha256=None)
    with backend.open_file(entry.attestations_dist) as stream:
        return dataclasses.replace(entry, attestations_sha256=stream_hashes(stream)["sha256"])


def _with_metadata(backend: Backend, known: IndexEntry, has_metadata: bool) -> IndexEntry:
    """``known`` advertising the metadata stored beside it, backfilled when missing."""
    if has_metadata:
        metadata: bytes | None = _stored_metadata(backend, known.dist)
    else:
        with tempfile.TemporaryDirectory(prefix="private-pypi-index-") as temp_dir:
            local = _download(backend, known.dist, Path(temp_dir))
            metadata = _backfill_metadata(backend, known.dist, local, Path(temp_dir))
    if metadata is None:
        return dataclasses.replace(known, metadata_sha256=None)
    requires_python = parse_metadata(metadata, known.filename).get("requires_python")
    return dataclasses.replace(
        known,
        metadata_sha256=hashlib.sha256(metadata).hexdigest(),
        requires_python=requires_python or known.requires_python,
    )


def _entry_from_storage(
    backend: Backend, dist: DistFile, stored: StoredFile, has_metadata: bool
) -> IndexEntry:
    with tempfile.TemporaryDirectory(prefix="private-pypi-index-") as temp_dir:
        local = _download(backend, dist, Path(temp_dir))
        hashes = file_hashes(local)
        metadata = _stored_metadata(backend, dist) if has_metadata else None
        if metadata is None:
            metadata = _backfill_metadata(backend, dist, local, Path(temp_dir))
    requires_python = None
    if metadata is not None:
        requires_python = parse_metadata(metadata, dist.filename).get("requires_python")
    return IndexEntry(
        filename=dist.filename,
        project=dist.project,
        version=dist.version,
        sha256=hashes["sha256"],
        md5=hashes["md5"],
        blake2b_256=hashes["blake2b_256"],
        size=stored.size,
        upload_time=stored.upload_time,
        requires_python=requires_python,
        metadata_sha256=hashlib.sha256(metadata).hexdigest() if metadata is not None else None,
    )


def _download(backend: Backend, dist: DistFile, folder: Path) -> Path:
    local = folder / dist.filename
    with backend.open_file(dist) as stream, open(local, "wb") as copy:
        shutil.copyfileobj(stream, copy, CHUNK_BYTES)
    return local


def _stored_metadata(backend: Backend, dist: DistFile) -> bytes:
    with backend.open_file(dist.companion(COMPANION_SUFFIX)) as stream:
        return stream.read()


def _backfill_metadata(
    backend: Backend, dist: DistFile, local: Path, temp_dir: Path
) -> bytes | None:
    try:
        metadata = extract_core_metadata(local, dist)
    except BadRequest as error:
        log.warning("no core metadata for %s: %s", dist.filename, error)
        return None
    if metadata is not None:
        companion = temp_dir / (dist.filename + COMPANION_SUFFIX)
        companion.write_bytes(metadata)
        try:
            backend.write_file(dist.companion(COMPANION_SUFFIX), companion)
        except FileExists:
            return _stored_metadata(backend, dist)  # written meanwhile by another server
    return metadata


def sha256_of(backend: Backend, dist: DistFile) -> str:
    """The sha256 of a stored file, read from the store."""
    with backend.open_file(dist) as stream:
        return stream_hashes(stream)["sha256"]


def index_from_remote(remote: IndexFile | None, *, label: str) -> PackageIndex:
    return PackageIndex() if remote is None else PackageIndex.from_bytes(remote.data, label=label)


def new_index_file() -> bytes:
    """The bytes of an empty index file, for a command that sets up a repository's store."""
    return PackageIndex().to_bytes()
