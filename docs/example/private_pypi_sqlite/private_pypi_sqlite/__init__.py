"""Packages stored in one SQLite database file: the example of ``docs/writing-a-backend.md``.

The database (``<ROOT>/cache/<name>/packages.sqlite3`` unless ``path`` says otherwise)::

    files       one row per stored file: filename, size, sha256, upload time
    chunks      the files' bytes, a MiB per row: no value grows with the file
    index_file  the remote index file: one row, with a version counted up at every write

A file's rows are written in one transaction: readers see all of it or nothing. Every
SQLite error is a store error, raised as ``OSError``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from private_pypi_core.api import (
    Backend,
    BackendConfig,
    DistFile,
    FileExists,
    IndexConflict,
    IndexFile,
    StoredFile,
    hookimpl,
)

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

CHUNK_BYTES = 1 << 20
BUSY_TIMEOUT_SECONDS = 60  # how long a write waits for another to finish
SCHEMA = """
PRAGMA journal_mode = WAL;  -- readers never wait for a writer
CREATE TABLE IF NOT EXISTS files (
    filename TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    uploaded TEXT NOT NULL  -- ISO 8601, UTC
);
CREATE TABLE IF NOT EXISTS chunks (
    filename TEXT NOT NULL,
    number INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (filename, number)
);
CREATE TABLE IF NOT EXISTS index_file (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    data BLOB NOT NULL,
    version INTEGER NOT NULL
);
"""


@dataclass(frozen=True)
class SQLiteConfig(BackendConfig):
    # The database file. A relative path is relative to the server's ROOT. Not one of the
    # anonymous_keys: a path may point anywhere.
    path: str = ""


class SQLiteBackend(Backend):
    type = "sqlite"
    config_class = SQLiteConfig

    def __init__(
        self, config: BackendConfig, root: Path, *, admin_secret: str | None = None
    ) -> None:
        super().__init__(config, root, admin_secret=admin_secret)
        assert isinstance(config, SQLiteConfig)
        # Relative to ROOT; an absolute path is kept as it is (pathlib's / does that).
        self.path = root / (config.path or f"cache/{config.name}/packages.sqlite3")
        self._created = False
        self._creating = threading.Lock()  # first calls may come from several threads

    @contextlib.contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """A connection for one call, closed after it: a transaction left open is rolled
        back. Every SQLite error becomes an ``OSError``, which the server answers with 503."""
        try:
            with contextlib.closing(self._open()) as db:
                yield db
        except sqlite3.Error as error:
            raise OSError(f"SQLite database {self.path}: {error}") from error

    def _open(self) -> sqlite3.Connection:
        with self._creating:
            if not self._created:
                # On first use, not in __init__: a server starts while its store is away, and
                # answers 503 until it is back.
                self.path.parent.mkdir(parents=True, exist_ok=True)
                schema = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_SECONDS)
                with contextlib.closing(schema):
                    schema.executescript(SCHEMA)
                self._created = True
        # isolation_level=None: no implicit transactions, each is begun and committed here.
        return sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)

    def list_files(self) -> list[StoredFile]:
        with self.connect() as db:
            rows = db.execute("SELECT filename, size, sha256, uploaded FROM files").fetchall()
        return [
            StoredFile(filename, size, datetime.fromisoformat(uploaded), sha256)
            for filename, size, sha256, uploaded in rows
        ]

    def open_file(self, dist: DistFile) -> BinaryIO:
        with self.connect() as db:  # ask the store now: a missing file fails here, not later
            query = db.execute("SELECT size FROM files WHERE filename = ?", (dist.filename,))
            row = query.fetchone()
        if row is None:
            raise FileNotFoundError(dist.filename)
        return io.BufferedReader(ChunkReader(self, dist.filename, size=row[0]), CHUNK_BYTES)

    def write_file(self, dist: DistFile, source: Path) -> None:
        digest, size = hashlib.sha256(), 0
        with self.connect() as db, open(source, "rb") as data:
            db.execute("BEGIN IMMEDIATE")  # one writer at a time; readers see the last commit
            taken = db.execute("SELECT 1 FROM files WHERE filename = ?", (dist.filename,))
            if taken.fetchone() is not None:
                raise FileExists(dist.filename)
            for number, chunk in enumerate(iter(lambda: data.read(CHUNK_BYTES), b"")):
                db.execute("INSERT INTO chunks VALUES (?, ?, ?)", (dist.filename, number, chunk))
                digest.update(chunk)
                size += len(chunk)
            uploaded = datetime.now(UTC).isoformat()
            db.execute(
                "INSERT INTO files VALUES (?, ?, ?, ?)",
                (dist.filename, size, digest.hexdigest(), uploaded),
            )
            db.execute("COMMIT")  # the file appears, all of it at once

    def delete_file(self, dist: DistFile) -> None:
        with self.connect() as db:
            db.execute("BEGIN IMMEDIATE")
            deleted = db.execute("DELETE FROM files WHERE filename = ?", (dist.filename,))
            db.execute("DELETE FROM chunks WHERE filename = ?", (dist.filename,))
            db.execute("COMMIT")
        if deleted.rowcount == 0:
            raise FileNotFoundError(dist.filename)

    def read_index(self) -> IndexFile | None:
        with self.connect() as db:
            row = db.execute("SELECT data, version FROM index_file").fetchone()
        return None if row is None else IndexFile(data=row[0], version=str(row[1]))

    def write_index(self, data: bytes, replaces: IndexFile | None) -> None:
        # Compare-and-swap in one statement: it changes a row only if nobody wrote since.
        with self.connect() as db:
            if replaces is None:
                written = db.execute("INSERT OR IGNORE INTO index_file VALUES (1, ?, 1)", (data,))
            else:
                written = db.execute(
                    "UPDATE index_file SET data = ?, version = version + 1 WHERE version = ?",
                    (data, int(replaces.version)),
                )
        if written.rowcount == 0:
            raise IndexConflict(f"the index in {self.path} changed since it was read")


class ChunkReader(io.RawIOBase):
    """A stored file's bytes, a chunk at a time. Each chunk is read on a connection of its
    own: sqlite3 connections stay in the thread that made them, and the server opens a stream
    in one thread, reads it in others and closes it in another still."""

    def __init__(self, backend: SQLiteBackend, filename: str, size: int) -> None:
        super().__init__()
        self.backend = backend
        self.filename = filename
        self.left = size  # bytes not yet read
        self.number = 0  # the next chunk
        self.pending = memoryview(b"")  # the current chunk's bytes not yet read

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        if not self.pending and self.left:
            with self.backend.connect() as db:
                row = db.execute(
                    "SELECT data FROM chunks WHERE filename = ? AND number = ?",
                    (self.filename, self.number),
                ).fetchone()
            if row is None:
                raise OSError(f"{self.filename} was deleted while being read")
            self.pending, self.number = memoryview(row[0]), self.number + 1
        target = memoryview(buffer).cast("B")
        size = min(len(target), len(self.pending))
        target[:size] = self.pending[:size]
        self.pending, self.left = self.pending[size:], self.left - size
        return size


@hookimpl
def private_pypi_backends() -> list[type[Backend]]:
    return [SQLiteBackend]
