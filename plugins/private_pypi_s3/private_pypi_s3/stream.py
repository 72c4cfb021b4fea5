"""A stored object's body as a ``BinaryIO`` whose failures are ``OSError`` like a file's."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, BinaryIO

from botocore.response import StreamingBody

from private_pypi_s3.errors import store_errors

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

READ_BUFFER_BYTES = 1 << 20


class _ObjectBody(io.RawIOBase):
    def __init__(self, body: StreamingBody, label: str) -> None:
        self._body = body
        self._label = label

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        with store_errors(f"reading {self._label}"):
            data = self._body.read(len(view))
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._body.close()
        super().close()


def object_stream(body: StreamingBody, label: str) -> BinaryIO:
    """A buffered binary stream over ``body``; a broken connection raises ``S3StoreError``."""
    return io.BufferedReader(_ObjectBody(body, label), READ_BUFFER_BYTES)
