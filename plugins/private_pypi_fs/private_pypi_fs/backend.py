"""Packages stored as files in a local folder, one subfolder per project.

Layout under the storage folder (``<ROOT>/cache/<name>/storage`` unless ``storage_path`` says
otherwise)::

    index.json                      the remote index file (the root of its parts)
    .index-parts/<name>             the index parts
    .index.lock                     serialises index writes of every server using the folder
    <project>/<filename>            the distribution files
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import filelock

from private_pypi_core.api import (
    Backend,
    BackendConfig,
    DistFile,
    FileExists,
    IndexConflict,
    IndexFile,
    StoredFile,
    atomic_write,
    fsync_dir,
)

INDEX_FILENAME = "index.json"
INDEX_LOCK_FILENAME = ".index.lock"
INDEX_PARTS_FOLDER = ".index-parts"  # a project's folder never starts with "."
TEMP_SUFFIX = ".tmp"


@dataclass(frozen=True)
class FileSystemConfig(BackendConfig):
    # Relative to the server's ROOT; default: <ROOT>/cache/<name>/storage. Not settable without
    # an admin credential: it may point anywhere.
    storage_path: str = ""


class FileSystemBackend(Backend):
    type = "file_system"
    config_class = FileSystemConfig
    stores_index_parts = True

    def __init__(
        self, config: BackendConfig, root: Path, *, admin_secret: str | None = None
    ) -> None:
        super().__init__(config, root, admin_secret=admin_secret)
        assert isinstance(config, FileSystemConfig)
        self.fs_config = config
        self.storage = root / (config.storage_path or f"cache/{config.name}/storage")
        # A store away at start (an unmounted share) is no reason not to start: its calls
        # fail, answered 503, until it is back.
        with contextlib.suppress(OSError):
            self.storage.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.index_lock = filelock.FileLock(self.storage / INDEX_LOCK_FILENAME)
        # Folders with entries not yet fsynced: a new file's name is made durable before the
        # index that names it is written, once per folder (a rebuild that stores metadata for
        # thousands of files syncs each project's folder once, not once a file). A stored file
        # that no index names yet is what a crash before the index write leaves anyway.
        self._unsynced_folders: set[Path] = set()
        self._unsynced_lock = threading.Lock()

    def list_files(self) -> Iterator[StoredFile]:
        # scandir: a folder's names and types in one call, one stat per file (at 20,000 files,
        # a third of the time of Path.iterdir with is_file and stat).
        with os.scandir(self.storage) as entries:
            projects = sorted(
                entry.path for entry in entries if entry.is_dir() and entry.name[0] != "."
            )
        for project in projects:
            with os.scandir(project) as entries:
                files = sorted(
                    (entry for entry in entries if not entry.name.startswith(".")),
                    key=lambda entry: entry.name,
                )
            for entry in files:
                if not entry.is_file():
                    continue  # temp files of writes in progress start with "."
                stat = entry.stat()
                yield StoredFile(
                    filename=entry.name,
                    size=stat.st_size,
                    upload_time=datetime.fromtimestamp(stat.st_mtime, UTC),
                )

    def open_file(self, dist: DistFile) -> BinaryIO:
        return open(self._path(dist), "rb")

    def write_file(self, dist: DistFile, source: Path) -> None:
        destination = self._path(dist)
        try:
            destination.parent.mkdir(mode=0o700)
            self._unsynced(self.storage)
        except FileExistsError:
            pass
        try:
            # Same file system (the server's ROOT holds both by default): a second name for
            # the received file, no copy. link() never replaces a name: no overwrite, atomically.
            os.link(source, destination)
        except FileExistsError:
            raise FileExists(dist.filename) from None
        except OSError as error:
            if error.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                raise
            self._copy_in(dist, source, destination)
        self._unsynced(destination.parent)

    def _unsynced(self, folder: Path) -> None:
        with self._unsynced_lock:
            self._unsynced_folders.add(folder)

    def _sync_folders(self) -> None:
        with self._unsynced_lock:
            folders, self._unsynced_folders = self._unsynced_folders, set()
        for folder in sorted(folders, key=lambda path: len(path.parts), reverse=True):
            fsync_dir(folder)

    def _copy_in(self, dist: DistFile, source: Path, destination: Path) -> None:
        """Copy ``source`` beside ``destination``, then link it in (another file system)."""
        fd, temp_name = tempfile.mkstemp(
            dir=destination.parent, prefix=f".{dist.filename}.", suffix=TEMP_SUFFIX
        )
        try:
            with os.fdopen(fd, "wb") as temp, open(source, "rb") as data:
                shutil.copyfileobj(data, temp, 1 << 20)
                temp.flush()
                os.fsync(temp.fileno())
            os.link(temp_name, destination)
        except FileExistsError:
            raise FileExists(dist.filename) from None
        finally:
            Path(temp_name).unlink(missing_ok=True)

    def delete_file(self, dist: DistFile) -> None:
        self._path(dist).unlink()
        fsync_dir(self._path(dist).parent)

    def read_index(self) -> IndexFile | None:
        try:
            data = (self.storage / INDEX_FILENAME).read_bytes()
        except FileNotFoundError:
            return None
        return IndexFile(data=data, version=_version_of(data))

    def write_index(self, data: bytes, replaces: IndexFile | None) -> None:
        # The lock lives in the store, so servers with different ROOTs sharing it agree.
        with self.index_lock:
            current = self.read_index()
            if (current and current.version) != (replaces and replaces.version):
                raise IndexConflict(str(self.storage / INDEX_FILENAME))
            self._sync_folders()
            atomic_write(self.storage / INDEX_FILENAME, data, mode=0o600)

    def read_index_part(self, name: str) -> bytes | None:
        try:
            return (self.storage / INDEX_PARTS_FOLDER / name).read_bytes()
        except FileNotFoundError:
            return None

    def write_index_part(self, name: str, data: bytes) -> None:
        folder = self.storage / INDEX_PARTS_FOLDER
        if not folder.is_dir():
            folder.mkdir(mode=0o700, exist_ok=True)
            self._unsynced(self.storage)
        # Its name is made durable with the others' before the index that names it is written.
        atomic_write(folder / name, data, mode=0o600, sync_folder=False)
        self._unsynced(folder)

    def delete_index_part(self, name: str) -> None:
        (self.storage / INDEX_PARTS_FOLDER / name).unlink(missing_ok=True)

    def _path(self, dist: DistFile) -> Path:
        return self.storage / dist.project / dist.filename


def _version_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
