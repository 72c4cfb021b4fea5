"""A backend as the core runs it: whatever it raises outside its contract becomes an ``OSError``.

The contract (``backend.py``) has a backend raise ``OSError`` when its store fails, and the
server answers that with a 503 and ``Retry-After``. A backend may let something else escape
all the same: its store library's own error (``sqlite3.OperationalError``, a client's
``RuntimeError``) or a bug of its own. ``Repository`` runs every backend inside
``GuardedBackend``, which raises ``BackendFailure`` (an ``OSError``) from those: the client
gets the 503 it would have got, and the log (``outages``) shows the original traceback once
per outage, naming the backend's mistake. The contract's own exceptions (``FileExists``,
``IndexConflict``, ``FileNotFoundError``) and the core's ``UserError`` pass unchanged.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, cast

from private_pypi_core.backend import (
    Backend,
    DistFile,
    FileExists,
    IndexConflict,
    IndexFile,
    StoredFile,
)
from private_pypi_core.errors import UserError

PASSED_ON = (OSError, FileExists, IndexConflict, UserError)


class BackendFailure(OSError):
    """A backend raised something other than ``OSError`` or its contract's exceptions; the
    original is its ``__cause__``."""


@contextmanager
def _translated(backend: Backend, call: str) -> Iterator[None]:
    try:
        yield
    except PASSED_ON:
        raise
    except Exception as error:
        raise BackendFailure(
            f"{type(backend).__name__}.{call} raised {type(error).__name__} ({error}); a "
            "backend should raise OSError when its store fails"
        ) from error


def guarded(backend: Backend) -> Backend:
    """``backend`` with its errors translated; every attribute it does not wrap (its config,
    its class settings, a plugin's own methods) is the backend's own."""
    return cast(Backend, GuardedBackend(backend))


class GuardedBackend:
    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def __getattr__(self, name: str) -> Any:
        return getattr(self.backend, name)

    def __repr__(self) -> str:
        return f"guarded({self.backend!r})"

    def list_files(self) -> Iterator[StoredFile]:
        with _translated(self.backend, "list_files"):
            yield from self.backend.list_files()

    def open_file(self, dist: DistFile) -> BinaryIO:
        with _translated(self.backend, "open_file"):
            stream = self.backend.open_file(dist)
        return cast(BinaryIO, GuardedStream(self.backend, stream))

    def write_file(self, dist: DistFile, source: Path) -> None:
        with _translated(self.backend, "write_file"):
            self.backend.write_file(dist, source)

    def delete_file(self, dist: DistFile) -> None:
        with _translated(self.backend, "delete_file"):
            self.backend.delete_file(dist)

    def read_index(self) -> IndexFile | None:
        with _translated(self.backend, "read_index"):
            return self.backend.read_index()

    def write_index(self, data: bytes, replaces: IndexFile | None) -> None:
        with _translated(self.backend, "write_index"):
            self.backend.write_index(data, replaces)

    def read_index_part(self, name: str) -> bytes | None:
        with _translated(self.backend, "read_index_part"):
            return self.backend.read_index_part(name)

    def write_index_part(self, name: str, data: bytes) -> None:
        with _translated(self.backend, "write_index_part"):
            self.backend.write_index_part(name, data)

    def delete_index_part(self, name: str) -> None:
        with _translated(self.backend, "delete_index_part"):
            self.backend.delete_index_part(name)

    def download_url(self, dist: DistFile) -> str | None:
        with _translated(self.backend, "download_url"):
            return self.backend.download_url(dist)


class GuardedStream:
    """A stream of ``open_file``, its errors translated. It can always be asked to ``seek``:
    a stream that cannot says so with ``io.UnsupportedOperation``, and the core reads instead."""

    def __init__(self, backend: Backend, stream: BinaryIO) -> None:
        self.backend = backend
        self.stream = stream

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)

    def read(self, size: int | None = -1) -> bytes:
        with _translated(self.backend, "open_file(...).read"):
            if size is None or size < 0:
                return self.stream.read()
            return self.stream.read(size)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        seek = getattr(self.stream, "seek", None)
        if seek is None:
            raise io.UnsupportedOperation("the backend's stream cannot seek")
        with _translated(self.backend, "open_file(...).seek"):
            return int(seek(offset, whence))

    def close(self) -> None:
        with _translated(self.backend, "open_file(...).close"):
            self.stream.close()

    def __enter__(self) -> GuardedStream:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
