"""Backends with one mistake each, as authors make them: the guide's SQLite example, one method
written the tempting way. ``suite_on_broken_backends.py`` runs the conformance suite on each."""

from __future__ import annotations

import contextlib
import hashlib
import io
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from private_pypi_core.api import DistFile, FileExists
from private_pypi_sqlite import SQLiteBackend

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

MiB = 1 << 20


class ThreadBoundStream(SQLiteBackend):
    """Its stream reads on the connection ``open_file`` made, which sqlite3 keeps to the
    thread that made it (``check_same_thread``)."""

    def open_file(self, dist: DistFile) -> BinaryIO:
        try:
            db = self._open()
            found = db.execute("SELECT 1 FROM files WHERE filename = ?", (dist.filename,))
            if found.fetchone() is None:
                db.close()
                raise FileNotFoundError(dist.filename)
            rows = db.execute(
                "SELECT data FROM chunks WHERE filename = ? ORDER BY number", (dist.filename,)
            )
        except sqlite3.Error as error:
            raise OSError(f"SQLite database {self.path}: {error}") from error
        return io.BufferedReader(CursorReader(db, rows))


class CursorReader(io.RawIOBase):
    def __init__(self, db: sqlite3.Connection, rows: sqlite3.Cursor) -> None:
        super().__init__()
        self.db, self.rows, self.pending = db, rows, b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        if not self.pending:
            row = self.rows.fetchone()
            self.pending = row[0] if row else b""
        target = memoryview(buffer).cast("B")
        size = min(len(target), len(self.pending))
        target[:size], self.pending = self.pending[:size], self.pending[size:]
        return size

    def close(self) -> None:
        self.db.close()
        super().close()


class SQLiteErrorsEscape(SQLiteBackend):
    """Lets ``sqlite3.Error`` out as it is: not an ``OSError``."""

    @contextlib.contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        with contextlib.closing(self._open()) as db:
            yield db


class VisibleWhileWriting(SQLiteBackend):
    """Lists the file first, then adds its chunks, each committed at once (short
    transactions, so other writers need not wait)."""

    def write_file(self, dist: DistFile, source: Path) -> None:
        with self.connect() as db, open(source, "rb") as data:
            if db.execute("SELECT 1 FROM files WHERE filename = ?", (dist.filename,)).fetchone():
                raise FileExists(dist.filename)
            sha256 = hashlib.file_digest(data, "sha256").hexdigest()
            db.execute(
                "INSERT INTO files VALUES (?, ?, ?, ?)",
                (dist.filename, source.stat().st_size, sha256, datetime.now(UTC).isoformat()),
            )
            data.seek(0)
            for number, chunk in enumerate(iter(lambda: data.read(MiB), b"")):
                db.execute("INSERT INTO chunks VALUES (?, ?, ?)", (dist.filename, number, chunk))


class OneValuePerFile(SQLiteBackend):
    """Stores a file as one value: SQLite takes up to a GB in one, but it passes whole through
    memory on the way in and out."""

    def write_file(self, dist: DistFile, source: Path) -> None:
        data = source.read_bytes()
        with self.connect() as db:
            db.execute("BEGIN IMMEDIATE")
            if db.execute("SELECT 1 FROM files WHERE filename = ?", (dist.filename,)).fetchone():
                raise FileExists(dist.filename)
            db.execute("INSERT INTO chunks VALUES (?, 0, ?)", (dist.filename, data))
            db.execute(
                "INSERT INTO files VALUES (?, ?, ?, ?)",
                (
                    dist.filename,
                    len(data),
                    hashlib.sha256(data).hexdigest(),
                    datetime.now(UTC).isoformat(),
                ),
            )
            db.execute("COMMIT")


class OneValueWithALimit(OneValuePerFile):
    """Stores a file as one value in a store that refuses values above 64 MiB, as MySQL does
    by default (``max_allowed_packet``), here SQLite with ``SQLITE_LIMIT_LENGTH`` lowered."""

    def _open(self) -> sqlite3.Connection:
        db = super()._open()
        db.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 64 * MiB)
        return db


class ListsItsTempFiles(SQLiteBackend):
    """Writes a file under a temp name, chunk by chunk, then renames it in one transaction:
    readers of the real name see it whole, but ``list_files`` (the example's, unchanged)
    shows the temp name meanwhile."""

    def write_file(self, dist: DistFile, source: Path) -> None:
        temp = f".{dist.filename}.part"
        with self.connect() as db, open(source, "rb") as data:
            if db.execute("SELECT 1 FROM files WHERE filename = ?", (dist.filename,)).fetchone():
                raise FileExists(dist.filename)
            uploaded = datetime.now(UTC).isoformat()
            db.execute("INSERT INTO files VALUES (?, 0, '', ?)", (temp, uploaded))
            digest = hashlib.sha256()
            for number, chunk in enumerate(iter(lambda: data.read(MiB), b"")):
                db.execute("INSERT INTO chunks VALUES (?, ?, ?)", (temp, number, chunk))
                db.execute(
                    "UPDATE files SET size = size + ? WHERE filename = ?", (len(chunk), temp)
                )
                digest.update(chunk)
            db.execute("BEGIN IMMEDIATE")
            db.execute(
                "UPDATE files SET filename = ?, sha256 = ? WHERE filename = ?",
                (dist.filename, digest.hexdigest(), temp),
            )
            db.execute("UPDATE chunks SET filename = ? WHERE filename = ?", (dist.filename, temp))
            db.execute("COMMIT")
