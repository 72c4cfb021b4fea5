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

Where the backend stores index parts (``Backend.stores_index_parts``), the index is split in
1,024 shards by the sha256 of each project's name, and the index file is a small root, format 4,
naming the part that holds each shard, with the tokens and statuses::

    {"format": 4, "parts": {"0a3": "0a3-<32 hex digits>", ...}, "tokens": ..., "projects": ...}

A part holds ``{"files": {...}}`` as above. Parts are never rewritten: a change writes its
shards as new parts, then replaces the root (compare-and-swap, as ever), then deletes the
parts it replaced. An upload thus writes a few hundred lines, whatever the size of the index.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import multiprocessing
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

from packaging.version import Version

from private_pypi_core.backend import Backend, DistFile, FileExists, StoredFile
from private_pypi_core.dists import parse_dist_filename
from private_pypi_core.errors import BadRequest, ConfigError
from private_pypi_core.hashing import CHUNK_BYTES, file_hashes, new_digests, stream_hashes
from private_pypi_core.metadata import (
    COMPANION_SUFFIX,
    CoreMetadata,
    parse_metadata,
    read_core_metadata,
)
from private_pypi_core.progress import Progress
from private_pypi_core.tokens import TokenRecord

FORMAT_VERSION = 1
TOKENS_FORMAT_VERSION = 2
STATUS_FORMAT_VERSION = 3  # project statuses (PEP 792), the files' PEP 740 keys
PARTS_FORMAT_VERSION = 4  # the root of an index stored in parts
SINGLE_FILE_FORMATS = (FORMAT_VERSION, TOKENS_FORMAT_VERSION, STATUS_FORMAT_VERSION)
FORMATS = (*SINGLE_FILE_FORMATS, PARTS_FORMAT_VERSION)
# 1,024 shards: at 100,000 files a part holds about 100 files (45 KB), and the root 1,024
# short lines (50 KB). With 256, parts of 400 files made parsing the parts another server or
# worker wrote the largest cost of concurrent uploads.
SHARDS = 1024
PART_NAME = re.compile(r"[0-9a-f]{3}-[0-9a-f]{32}")
ATTESTATIONS_SUFFIX = ".attestations"  # the upload's PEP 740 attestations, as sent
COMPANION_SUFFIXES = (COMPANION_SUFFIX, ATTESTATIONS_SUFFIX)
STATUSES = ("active", "archived", "quarantined", "deprecated")  # PEP 792
MAX_REASON_CHARS = 500
# build_index: files read per batch; batches read at once (mostly waiting on the store and on
# the fsync of each metadata file stored: 16 at once index 20,000 new files on the fs backend
# in 3.9 s, 4 in 7.4 s); how many new files make it worth starting a process per core to read
# metadata; the largest file read into memory (larger ones go to a temp file).
BATCH_FILES = 256
INDEX_THREADS = 16
PROCESS_MIN_FILES = 500
IN_MEMORY_BYTES = 16 << 20

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IndexEntry:
    """One published distribution file."""

    filename: str
    project: str  # normalised
    version: str
    sha256: str
    size: int  # 0 when unknown: a proxied file from an upstream page without sizes
    upload_time: datetime | None  # None only for a proxied file its upstream gave none
    requires_python: str | None = None
    md5: str | None = None
    blake2b_256: str | None = None
    metadata_sha256: str | None = None  # set when "<filename>.metadata" is stored
    yanked: str | None = None  # None: not yanked; otherwise the reason, possibly ""
    attestations_sha256: str | None = None  # set when "<filename>.attestations" is stored
    # The PEP 740 publisher object of the trusted publisher that uploaded the file, if one did.
    publisher: Mapping[str, Any] | None = field(default=None, hash=False)
    # Where a proxy repository fetches the file from (its upstream's URL) when not cached.
    url: str | None = None

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
# Sorts before every upload time: that of a file without one, where a time is needed.
UNKNOWN_TIME = datetime.fromtimestamp(0, UTC)


def without_companion_suffix(filename: str) -> str:
    """The file a companion (``<file>.metadata``, ``<file>.attestations``) goes with; any
    other name as it is."""
    for suffix in COMPANION_SUFFIXES:
        if filename.endswith(suffix):
            return filename.removesuffix(suffix)
    return filename


def shard_key(project: str) -> str:
    """The shard of a normalised project name, from its sha256: three hex digits."""
    return f"{int(hashlib.sha256(project.encode()).hexdigest()[:3], 16) % SHARDS:03x}"


class Shard:
    """The entries of the projects of one shard key, by filename; immutable."""

    def __init__(
        self, entries: Mapping[str, IndexEntry], lines: Mapping[str, str] | None = None
    ) -> None:
        """``lines``: those of entries kept from a shard this one replaces, if it had any."""
        self.entries = entries
        if lines is not None:
            self.__dict__["lines"] = {
                name: lines.get(name) or _line(name, entry) for name, entry in entries.items()
            }

    def __eq__(self, other: object) -> bool:
        return self is other or (isinstance(other, Shard) and self.entries == other.entries)

    __hash__ = None  # type: ignore[assignment]

    @cached_property
    def projects(self) -> dict[str, list[IndexEntry]]:
        """Entries by project, each project's files sorted by name."""
        grouped: dict[str, list[IndexEntry]] = {}
        for entry in sorted(self.entries.values(), key=lambda e: e.filename):
            grouped.setdefault(entry.project, []).append(entry)
        return grouped

    @cached_property
    def lines(self) -> dict[str, str]:
        """Each file's line of the index file, by filename; encoded once per shard."""
        return {name: _line(name, entry) for name, entry in self.entries.items()}

    def with_entries(self, entries: Mapping[str, IndexEntry]) -> Shard:
        """This shard with ``entries`` added or replaced; the lines of the others are kept."""
        kept = self.__dict__.get("lines")
        if kept is not None:
            kept = {name: line for name, line in kept.items() if name not in entries}
        return Shard({**self.entries, **entries}, kept)

    def to_bytes(self) -> bytes:
        """The shard's part file: its files, one line each, sorted by name."""
        return f"{{{_table('files', [self.lines[n] for n in sorted(self.lines)])}}}\n".encode()

    @cached_property
    def digest(self) -> str:
        """The sha256 of the part file, in hex."""
        return hashlib.sha256(self.to_bytes()).hexdigest()

    @classmethod
    def from_bytes(cls, data: bytes, *, label: str) -> Shard:
        """Parse a part file; ``ConfigError`` names ``label`` when it is unusable."""
        try:
            files = json.loads(data)["files"]
            entries = {name: _entry(name, record) for name, record in files.items()}
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise ConfigError(f"{label}: not a valid index part: {error}") from None
        return cls(entries, _lines_of(data, list(files)))


@dataclass(frozen=True)
class PackageIndex:
    """An immutable snapshot of a repository's index; changes return a new snapshot.

    Files are held in shards by the hash of their project's name (``shard_key``), so that a
    change rebuilds, writes and reloads only the shards it touches: at 100,000 files, a
    shard's few hundred files rather than the whole index.
    """

    shards: Mapping[str, Shard] = field(default_factory=dict)  # by shard key, none empty
    tokens: Mapping[str, TokenRecord] = field(default_factory=dict)  # by id
    statuses: Mapping[str, ProjectStatus] = field(default_factory=dict)  # by project, not active

    @classmethod
    def of(
        cls,
        entries: Iterable[IndexEntry],
        tokens: Mapping[str, TokenRecord] | None = None,
        statuses: Mapping[str, ProjectStatus] | None = None,
    ) -> PackageIndex:
        grouped: dict[str, dict[str, IndexEntry]] = {}
        for entry in entries:
            grouped.setdefault(shard_key(entry.project), {})[entry.filename] = entry
        shards = {key: Shard(files) for key, files in grouped.items()}
        return cls(shards, tokens or {}, statuses or {})

    @cached_property
    def entries(self) -> dict[str, IndexEntry]:
        """Every entry by filename."""
        merged: dict[str, IndexEntry] = {}
        for shard in self.shards.values():
            merged.update(shard.entries)
        return merged

    @cached_property
    def projects(self) -> dict[str, list[IndexEntry]]:
        """Entries by normalised project name, projects and files sorted by name."""
        merged: dict[str, list[IndexEntry]] = {}
        for shard in self.shards.values():
            merged.update(shard.projects)
        return dict(sorted(merged.items()))

    def files_of(self, project: str) -> list[IndexEntry] | None:
        """The entries of a normalised project name, sorted by filename; ``None`` if none."""
        shard = self.shards.get(shard_key(project))
        return shard.projects.get(project) if shard is not None else None

    def entry(self, filename: str, project: str) -> IndexEntry | None:
        """The entry of ``filename``, a file of the normalised ``project``, if listed."""
        shard = self.shards.get(shard_key(project))
        return shard.entries.get(filename) if shard is not None else None

    def with_entry(self, entry: IndexEntry) -> PackageIndex:
        return self.with_entries([entry])

    def with_entries(self, entries: Iterable[IndexEntry]) -> PackageIndex:
        changed: dict[str, dict[str, IndexEntry]] = {}
        for entry in entries:
            changed.setdefault(shard_key(entry.project), {})[entry.filename] = entry
        shards = dict(self.shards)
        for key, files in changed.items():
            shard = shards.get(key)
            shards[key] = shard.with_entries(files) if shard is not None else Shard(files)
        return dataclasses.replace(self, shards=shards)

    def with_project(self, project: str, entries: Iterable[IndexEntry]) -> PackageIndex:
        """The files of the normalised ``project`` replaced by ``entries`` (none: dropped)."""
        key = shard_key(project)
        shard = self.shards.get(key)
        kept = {
            name: entry
            for name, entry in (shard.entries.items() if shard is not None else ())
            if entry.project != project
        }
        files = {**kept, **{entry.filename: entry for entry in entries}}
        shards = {k: v for k, v in self.shards.items() if k != key}
        if files:
            shards[key] = Shard(files)
        return dataclasses.replace(self, shards=shards)

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

    @property
    def has_provenance(self) -> bool:
        return any(
            e.attestations_sha256 is not None or e.publisher is not None
            for shard in self.shards.values()
            for e in shard.entries.values()
        )

    def to_bytes(self) -> bytes:
        """The whole index in one file (for backends without index parts), in the lowest
        format that holds it: one line per file, token and status, so a change reads as a
        one-line diff."""
        lines: dict[str, str] = {}
        for shard in self.shards.values():
            lines.update(shard.lines)
        parts = [_table("files", [lines[name] for name in sorted(lines)]), *self._tables()]
        if self.statuses or self.has_provenance:
            version = STATUS_FORMAT_VERSION
        else:
            version = TOKENS_FORMAT_VERSION if self.tokens else FORMAT_VERSION
        return f'{{"format":{version},{",".join(parts)}}}\n'.encode()

    def root_bytes(self, part_names: Mapping[str, str]) -> bytes:
        """The root file of the index stored in parts: the name of each shard's part (by
        shard key), the tokens and the statuses."""
        parts = [
            _table(
                "parts", [f"{_compact(k)}:{_compact(part_names[k])}" for k in sorted(self.shards)]
            ),
            *self._tables(),
        ]
        return f'{{"format":{PARTS_FORMAT_VERSION},{",".join(parts)}}}\n'.encode()

    def _tables(self) -> list[str]:
        tables = []
        if self.tokens:
            tokens = {k: t.to_json() for k, t in self.tokens.items()}
            tables.append(_table("tokens", _rows(tokens)))
        if self.statuses:
            statuses = {project: _status_record(s) for project, s in self.statuses.items()}
            tables.append(_table("projects", _rows(statuses)))
        return tables

    @classmethod
    def from_bytes(cls, data: bytes, *, label: str) -> PackageIndex:
        """Parse an index file in one piece (formats 1 to 3); ``ConfigError`` names ``label``
        when it is unusable."""
        document = _document(data, label=label, formats=SINGLE_FILE_FORMATS)
        try:
            return cls.of(
                (_entry(name, record) for name, record in document["files"].items()),
                *_tokens_and_statuses(document),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise ConfigError(f"{label}: not a valid index file: {error}") from None


@dataclass(frozen=True)
class IndexRoot:
    """A parsed index file: in one piece (``index``), or the root of an index stored in
    parts (``part_names`` by shard key, the shards still to be read)."""

    index: PackageIndex | None = None
    part_names: Mapping[str, str] = field(default_factory=dict)
    tokens: Mapping[str, TokenRecord] = field(default_factory=dict)
    statuses: Mapping[str, ProjectStatus] = field(default_factory=dict)

    @classmethod
    def from_bytes(cls, data: bytes, *, label: str) -> IndexRoot:
        document = _document(data, label=label, formats=FORMATS)
        if document["format"] in SINGLE_FILE_FORMATS:
            return cls(index=PackageIndex.from_bytes(data, label=label))
        try:
            names = document["parts"]
            if not all(isinstance(n, str) and PART_NAME.fullmatch(n) for n in names.values()):
                raise ValueError("invalid part name")
            return cls(None, dict(names), *_tokens_and_statuses(document))
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise ConfigError(f"{label}: not a valid index file: {error}") from None

    def with_shards(self, shards: Mapping[str, Shard]) -> PackageIndex:
        return PackageIndex(dict(shards), self.tokens, self.statuses)


def _document(data: bytes, *, label: str, formats: tuple[int, ...]) -> dict[str, Any]:
    try:
        document = json.loads(data)
        found = document.get("format")
    except (ValueError, AttributeError) as error:
        raise ConfigError(f"{label}: not a valid index file: {error}") from None
    if found not in formats:
        raise ConfigError(f"{label}: unsupported index format {found!r}")
    return document  # type: ignore[no-any-return]


def _tokens_and_statuses(
    document: Mapping[str, Any],
) -> tuple[dict[str, TokenRecord], dict[str, ProjectStatus]]:
    tokens = {
        token_id: TokenRecord.from_json(token_id, record)
        for token_id, record in document.get("tokens", {}).items()
    }
    statuses = {
        project: _status(record) for project, record in document.get("projects", {}).items()
    }
    return tokens, statuses


_compact = json.JSONEncoder(separators=(",", ":")).encode


def _rows(rows: Mapping[str, Any]) -> list[str]:
    return [f"{_compact(k)}:{_compact(v)}" for k, v in sorted(rows.items())]


def _table(key: str, lines: list[str]) -> str:
    joined = ",\n".join(lines)
    return f'"{key}":{{\n{joined}\n}}'


def _lines_of(part: bytes, filenames: list[str]) -> dict[str, str] | None:
    """The lines of a part file as ``Shard.to_bytes`` writes it (one file a line: JSON escapes
    every newline within one), kept so that a change encodes only what it changed; ``None``
    when it is laid out otherwise."""
    text = part.decode()
    if not (text.startswith(_PART_HEAD) and text.endswith(_PART_TAIL)):
        return None
    body = text[len(_PART_HEAD) : -len(_PART_TAIL)]
    lines = body.split(",\n") if body else []
    if len(lines) != len(filenames):
        return None
    return dict(zip(filenames, lines, strict=True))


_PART_HEAD, _PART_TAIL = '{"files":{\n', "\n}}\n"


def _line(filename: str, entry: IndexEntry) -> str:
    return f"{_compact(filename)}:{_compact(_record(entry))}"


OPTIONAL_FIELDS = tuple(
    f.name for f in dataclasses.fields(IndexEntry) if f.default is not dataclasses.MISSING
)


def _record(entry: IndexEntry) -> dict[str, Any]:
    record: dict[str, Any] = {
        "project": entry.project,
        "version": entry.version,
        "sha256": entry.sha256,
        "size": entry.size,
        "upload_time": None if entry.upload_time is None else entry.upload_time.isoformat(),
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
    upload_time = None  # a proxied file its upstream gave no time
    if record["upload_time"] is not None:
        upload_time = datetime.fromisoformat(record["upload_time"])
        if upload_time.tzinfo is None:
            upload_time = upload_time.replace(tzinfo=UTC)
    return IndexEntry(
        filename,
        record["project"],
        record["version"],
        record["sha256"],
        record["size"],
        upload_time,
        *map(record.get, OPTIONAL_FIELDS),
    )


def build_index(
    backend: Backend, previous: PackageIndex, *, progress: Progress | None = None
) -> PackageIndex:
    """The index of what ``backend`` stores now.

    Entries of ``previous`` are kept for files still stored with the same size (they hold what
    only the upload knew, such as a yank); other files are hashed from storage. Core metadata
    is advertised exactly when it is stored: missing metadata is extracted and stored beside
    its file (files uploaded before metadata was served), a stored one is picked up. A file
    whose entry has an ``md5`` yet no metadata, and none stored, is not read again: that entry
    was made by a version that extracts metadata (an upload, or this function), so the file has
    none to give (an sdist older than Metadata-Version 2.2, say).

    Files are read in batches of ``BATCH_FILES``, ``INDEX_THREADS`` batches at a time
    (backends may be called from several threads, and mostly make them wait). Reading a file's
    metadata is Python work, which the GIL serialises: for many files it is done in a process
    per core (``Inspector``), a batch per round trip. ``progress`` counts the files read.
    """
    progress = progress or Progress()
    stored = {f.filename: f for f in backend.list_files()}
    entries: dict[str, IndexEntry] = {}
    jobs: list[_FileJob] = []
    for filename, stored_file in stored.items():
        if filename.endswith(COMPANION_SUFFIXES):
            continue
        job = _FileJob(
            stored_file,
            previous.entries.get(filename),
            has_metadata=filename + COMPANION_SUFFIX in stored,
            has_attestations=filename + ATTESTATIONS_SUFFIX in stored,
        )
        if job.known is not None and job.unchanged():
            entries[filename] = job.known
            continue
        try:
            job.dist = parse_dist_filename(filename)
        except BadRequest as error:
            log.warning("skipping a stored file that is not a distribution: %s", error)
            continue
        jobs.append(job)
    progress.add_total(len(jobs))
    batches = [jobs[start : start + BATCH_FILES] for start in range(0, len(jobs), BATCH_FILES)]
    with (
        Inspector(processes=len(jobs) >= PROCESS_MIN_FILES) as inspector,
        tempfile.TemporaryDirectory(prefix="private-pypi-index-") as temp_dir,
        ThreadPoolExecutor(INDEX_THREADS, thread_name_prefix="index") as pool,
    ):
        scratch = Path(temp_dir)
        futures = [
            pool.submit(_index_batch, backend, batch, inspector, scratch, progress)
            for batch in batches
        ]
        try:
            for future in as_completed(futures):
                entries.update((entry.filename, entry) for entry in future.result())
        except BaseException:
            pool.shutdown(cancel_futures=True)
            raise
    return PackageIndex.of(entries.values(), previous.tokens, previous.statuses)


def _index_batch(
    backend: Backend, batch: list[_FileJob], inspector: Inspector, scratch: Path, progress: Progress
) -> list[IndexEntry]:
    """The entries of a batch of files: their contents read, inspected in one go, finished."""
    to_inspect = [job for job in batch if job.needs_inspection()]
    sources = [job.read(backend, scratch) for job in to_inspect]
    try:
        found = inspector.inspect(sources, [job.dist for job in to_inspect])
    finally:
        for source in sources:
            if isinstance(source, Path):
                source.unlink()
    inspections = dict(zip(map(id, to_inspect), found, strict=True))
    entries = []
    for job in batch:
        entries.append(job.finish(backend, inspections.get(id(job)), scratch))
        progress.advance()
    return entries


@dataclass(frozen=True)
class Inspection:
    """What a distribution file's bytes give its index entry."""

    hashes: Mapping[str, str]
    metadata: CoreMetadata
    problem: str | None = None  # why it has no metadata, when it should have


def inspect_distributions(
    sources: list[Path | bytes], dists: list[DistFile | None]
) -> list[Inspection]:
    """The digests and core metadata of distribution files (each a path, or its bytes)."""
    return [_inspect(source, dist) for source, dist in zip(sources, dists, strict=True)]


def _inspect(source: Path | bytes, dist: DistFile | None) -> Inspection:
    assert dist is not None
    if isinstance(source, bytes):
        digests = new_digests()
        for digest in digests.values():
            digest.update(source)
        hashes = {name: digest.hexdigest() for name, digest in digests.items()}
    else:
        hashes = file_hashes(source)
    try:
        return Inspection(hashes, read_core_metadata(source, dist))
    except BadRequest as error:
        return Inspection(hashes, CoreMetadata(None, None), str(error))


class Inspector:
    """Runs ``inspect_distributions``: in the calling thread, or, with ``processes``, in a pool
    of a process per core, for batches of files held in memory.

    The pool's processes are forked when it is made, before ``build_index`` starts its threads
    (a fork copies only the thread that calls it, so no lock held by another thread is left
    locked there for ever). Forked, they start at once and never run the caller's ``__main__``
    again, as spawned ones would.
    """

    def __init__(self, *, processes: bool) -> None:
        self._pool: ProcessPoolExecutor | None = None
        if processes and (os.cpu_count() or 1) > 1:
            context = multiprocessing.get_context("fork")
            self._pool = ProcessPoolExecutor(os.cpu_count(), mp_context=context)
            self._pool.submit(int).result()  # the first task forks them all

    def __enter__(self) -> Inspector:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)

    def inspect(
        self, sources: list[Path | bytes], dists: list[DistFile | None]
    ) -> list[Inspection]:
        if self._pool is None or not sources:
            return inspect_distributions(sources, dists)
        return self._pool.submit(inspect_distributions, sources, dists).result()


@dataclass(eq=False)
class _FileJob:
    """One stored distribution file to index, and what the previous index knew of it."""

    stored: StoredFile
    known: IndexEntry | None
    has_metadata: bool
    has_attestations: bool
    dist: DistFile | None = None

    @property
    def _fresh(self) -> bool:
        """Whether the file is new, or not the one the known entry describes."""
        return self.known is None or self.known.size != self.stored.size

    def _metadata_settled(self) -> bool:
        """Whether the known entry advertises the stored metadata, or knows there is none."""
        assert self.known is not None
        if self.has_metadata:
            return bool(self.known.metadata_sha256)
        return not self.known.metadata_sha256 and self.known.md5 is not None

    def unchanged(self) -> bool:
        """Whether the known entry still describes the stored file and its companions."""
        if self._fresh or self.has_attestations != bool(self.known.attestations_sha256):  # type: ignore[union-attr]
            return False
        return self._metadata_settled()

    def needs_inspection(self) -> bool:
        """Whether the file must be read for its digests and metadata."""
        return not self.has_metadata and (self._fresh or not self._metadata_settled())

    def read(self, backend: Backend, scratch: Path) -> Path | bytes:
        """The stored file: its bytes, or a copy in ``scratch`` when large."""
        assert self.dist is not None
        with backend.open_file(self.dist) as stream:
            if self.stored.size <= IN_MEMORY_BYTES:
                return stream.read()
            local = scratch / self.dist.filename
            with open(local, "wb") as copy:
                shutil.copyfileobj(stream, copy, CHUNK_BYTES)
            return local

    def finish(self, backend: Backend, inspection: Inspection | None, scratch: Path) -> IndexEntry:
        """The file's entry, from the known one, the stored metadata and ``inspection``; the
        metadata found by ``inspection`` is stored beside the file."""
        dist = self.dist
        assert dist is not None
        if inspection is not None and inspection.problem is not None:
            log.warning("no core metadata for %s: %s", dist.filename, inspection.problem)
        if inspection is not None and inspection.metadata.data is not None:
            inspection = _store_metadata(backend, dist, inspection, scratch)
        if self.has_metadata and (self._fresh or not self._metadata_settled()):
            metadata: CoreMetadata | None = _stored_metadata(backend, dist)
        else:
            metadata = inspection.metadata if inspection is not None else None
        if self._fresh:
            if inspection is not None:
                hashes = inspection.hashes
            else:
                with backend.open_file(dist) as stream:
                    hashes = stream_hashes(stream)
            entry = IndexEntry(
                filename=dist.filename,
                project=dist.project,
                version=dist.version,
                sha256=hashes["sha256"],
                md5=hashes["md5"],
                blake2b_256=hashes["blake2b_256"],
                size=self.stored.size,
                upload_time=self.stored.upload_time,
            )
        else:
            assert self.known is not None
            entry = self.known
            if inspection is not None:  # backfilled: with the digests an older entry lacks
                hashes = inspection.hashes
                entry = dataclasses.replace(
                    entry, md5=hashes["md5"], blake2b_256=hashes["blake2b_256"]
                )
        if metadata is not None:
            entry = dataclasses.replace(
                entry,
                metadata_sha256=hashlib.sha256(metadata.data).hexdigest()
                if metadata.data
                else None,
                requires_python=metadata.requires_python or entry.requires_python,
            )
        if self.has_attestations != bool(entry.attestations_sha256):
            entry = _with_attestations(backend, entry, self.has_attestations)
        return entry


def _with_attestations(backend: Backend, entry: IndexEntry, stored: bool) -> IndexEntry:
    """``entry`` advertising the attestations stored beside it, or none."""
    if not stored:
        return dataclasses.replace(entry, attestations_sha256=None)
    with backend.open_file(entry.attestations_dist) as stream:
        return dataclasses.replace(entry, attestations_sha256=stream_hashes(stream)["sha256"])


def _stored_metadata(backend: Backend, dist: DistFile) -> CoreMetadata:
    with backend.open_file(dist.companion(COMPANION_SUFFIX)) as stream:
        data = stream.read()
    return CoreMetadata(data, parse_metadata(data, dist.filename).get("requires_python"))


def _store_metadata(
    backend: Backend, dist: DistFile, inspection: Inspection, scratch: Path
) -> Inspection:
    """Store the metadata ``inspection`` found beside its file: ``inspection``, with the
    metadata stored meanwhile by another server if there is one."""
    assert inspection.metadata.data is not None
    companion = scratch / (dist.filename + COMPANION_SUFFIX)
    with open(companion, "wb") as file:
        file.write(inspection.metadata.data)
        file.flush()
        os.fsync(file.fileno())  # write_file may hard-link it: it must be on disk
    try:
        backend.write_file(dist.companion(COMPANION_SUFFIX), companion)
    except FileExists:
        return dataclasses.replace(inspection, metadata=_stored_metadata(backend, dist))
    finally:
        companion.unlink()
    return inspection


def sha256_of(backend: Backend, dist: DistFile) -> str:
    """The sha256 of a stored file, read from the store."""
    with backend.open_file(dist) as stream:
        return stream_hashes(stream)["sha256"]


def new_index_file() -> bytes:
    """The bytes of an empty index file, for a command that sets up a repository's store."""
    return PackageIndex().to_bytes()
