"""Atomic local file writes: a reader sees the old bytes or the new, never a mix."""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO

# A file's identity and state: a file replaced by ``atomic_write`` never keeps all three.
FileVersion = tuple[int, int, int]


def file_version(path: Path | str) -> FileVersion | None:
    """(inode, mtime in ns, size) of ``path``, or ``None`` when it does not exist."""
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_mtime_ns, stat.st_size


def atomic_write(path: Path, data: bytes, *, mode: int = 0o644, sync_folder: bool = True) -> None:
    """Replace ``path`` with ``data``: write a temp file beside it, fsync, rename, fsync dir.
    With ``sync_folder=False`` the caller fsyncs the folder (once for several files)."""
    atomic_write_stream(path, io.BytesIO(data), mode=mode, sync_folder=sync_folder)


def atomic_write_stream(
    path: Path, stream: BinaryIO, *, mode: int = 0o644, sync_folder: bool = True
) -> None:
    """``atomic_write`` of what ``stream`` holds, copied in chunks (never whole in memory)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as temp:
            shutil.copyfileobj(stream, temp, 1 << 20)
            temp.flush()
            os.fchmod(temp.fileno(), mode)
            os.fsync(temp.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    if sync_folder:
        fsync_dir(path.parent)


def write_private(path: Path, data: bytes) -> None:
    """Write ``path`` readable by this user only (mode 0600, like the temp file of an upload)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(data)


def create_exclusive(path: Path, data: bytes, *, mode: int = 0o600) -> bool:
    """Write ``path`` only if it does not exist yet; return whether this call created it.

    The content appears at once and whole (written aside, then hard-linked in), so several
    processes racing to create the same file agree on one version.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as temp:
            temp.write(data)
            os.fchmod(temp.fileno(), mode)
            os.fsync(temp.fileno())
        os.link(temp_name, path)
    except FileExistsError:
        return False
    finally:
        Path(temp_name).unlink(missing_ok=True)
    fsync_dir(path.parent)
    return True


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_stale_temp_files(folder: Path, pattern: str) -> list[Path]:
    """Delete files matching ``pattern`` below ``folder``: what writes cut short by a crash
    left behind. Only call it while nothing can be writing there."""
    removed = []
    for path in folder.glob(pattern):
        if path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed
