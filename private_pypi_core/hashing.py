"""The digests the upload API and the index carry: sha256, md5 and blake2b-256."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import BinaryIO, Protocol

CHUNK_BYTES = 1 << 20


class Digest(Protocol):
    def update(self, data: bytes, /) -> None: ...
    def hexdigest(self) -> str: ...


def new_digests() -> dict[str, Digest]:
    """Fresh digests, keyed as the index names them."""
    return {
        "sha256": hashlib.sha256(),
        "md5": hashlib.md5(usedforsecurity=False),
        "blake2b_256": hashlib.blake2b(digest_size=32),
    }


def stream_hashes(stream: BinaryIO) -> dict[str, str]:
    digests = new_digests()
    while chunk := stream.read(CHUNK_BYTES):
        for digest in digests.values():
            digest.update(chunk)
    return {name: digest.hexdigest() for name, digest in digests.items()}


def file_hashes(path: Path) -> dict[str, str]:
    with open(path, "rb") as stream:
        return stream_hashes(stream)
