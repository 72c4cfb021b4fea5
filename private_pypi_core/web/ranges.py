"""Byte ranges of a file download (RFC 9110): one range per request, as installers send."""

from __future__ import annotations

import io
from typing import BinaryIO

import falcon
import falcon.asgi

SKIP_CHUNK_BYTES = 1 << 20


def byte_range(req: falcon.asgi.Request, size: int, etag: str) -> tuple[int, int] | None:
    """``requested_range`` for the headers of ``req``."""
    return requested_range(req.get_header("Range"), req.get_header("If-Range"), size, etag)


def requested_range(
    header: str | None, if_range: str | None, size: int, etag: str
) -> tuple[int, int] | None:
    """The inclusive (first, last) byte range to send, or ``None`` for the whole file.

    A header this server does not act on (several ranges, another unit, a stale ``If-Range``,
    a malformed value) means the whole file, as RFC 9110 allows; a range that starts past the
    end answers 416.
    """
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    if if_range is not None and if_range.strip() != etag:
        return None
    first_text, sep, last_text = header.removeprefix("bytes=").strip().partition("-")
    try:
        if not sep:
            return None
        if not first_text:  # a suffix: the last N bytes
            suffix = int(last_text)
            if suffix <= 0:
                raise _not_satisfiable(size)
            return max(size - suffix, 0), size - 1
        first = int(first_text)
        last = int(last_text) if last_text else size - 1
    except ValueError:
        return None
    if first < 0 or last < first:
        return None
    if first >= size:
        raise _not_satisfiable(size)
    return first, min(last, size - 1)


def _not_satisfiable(size: int) -> falcon.HTTPRangeNotSatisfiable:
    return falcon.HTTPRangeNotSatisfiable(resource_length=size)


def skip(stream: BinaryIO, offset: int) -> None:
    """Move ``stream`` forward by ``offset`` bytes, reading when it cannot seek."""
    try:
        stream.seek(offset, io.SEEK_CUR)
    except (OSError, io.UnsupportedOperation):
        while offset > 0:
            chunk = stream.read(min(SKIP_CHUNK_BYTES, offset))
            if not chunk:
                return
            offset -= len(chunk)
