"""Reading a legacy-API upload (the form twine, ``uv publish`` and ``poetry publish`` send).

The file part is streamed to a temp file while it is hashed; nothing holds it whole in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import os
import tempfile
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import falcon
import falcon.asgi
from falcon.media.multipart import MultipartParseError
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from private_pypi_core.dists import parse_dist_filename, validate_project
from private_pypi_core.errors import BadRequest, PayloadTooLarge
from private_pypi_core.files import write_private
from private_pypi_core.hashing import new_digests
from private_pypi_core.index import IndexEntry
from private_pypi_core.metadata import extract_core_metadata, parse_metadata
from private_pypi_core.provenance import check_attestations
from private_pypi_core.repository import Upload

FILE_FIELD = "content"
# Room for the form fields around the file (metadata, description): all of them together may
# hold this much, and the declared Content-Length may exceed max_file_bytes by this much.
FORM_OVERHEAD_BYTES = 4 << 20
FILETYPE_SUFFIXES = {"bdist_wheel": (".whl",), "sdist": (".tar.gz", ".zip")}
DIGEST_FIELDS = {"sha256_digest": "sha256", "md5_digest": "md5", "blake2_256_digest": "blake2b_256"}


@contextlib.asynccontextmanager
async def receive_upload(
    req: falcon.asgi.Request,
    max_file_bytes: int,
    temp_dir: Path,
    publisher: Mapping[str, Any] | None = None,
) -> AsyncIterator[Upload]:
    """The checked upload of ``req``, in a temp file that is removed afterwards;
    ``publisher``: the trusted publisher sending it, if one is (``Grant.publisher``)."""
    media_type = (req.content_type or "").split(";")[0].strip().lower()
    if media_type != "multipart/form-data":
        raise BadRequest(
            "An upload must be a multipart/form-data POST (the upload API twine uses); "
            f"got {media_type or 'no Content-Type'}."
        )
    if req.content_length is not None and req.content_length > max_file_bytes + FORM_OVERHEAD_BYTES:
        raise PayloadTooLarge(_too_large(max_file_bytes))
    fd, temp_name = tempfile.mkstemp(dir=temp_dir, prefix=".upload-", suffix=".tmp")
    path = Path(temp_name)
    metadata_path = path.with_suffix(".metadata")
    attestations_path = path.with_suffix(".attestations")
    try:
        with os.fdopen(fd, "wb") as temp:
            fields, received = await _read_form(req, temp, max_file_bytes)
            temp.flush()
            await asyncio.to_thread(os.fsync, temp.fileno())  # durable before it is published
        entry = dataclasses.replace(_checked_entry(fields, received), publisher=publisher)
        attestations = fields.get("attestations", "")
        if attestations:  # PEP 740: kept beside the file once checked against it
            await asyncio.to_thread(
                check_attestations, attestations, entry.filename, entry.sha256, publisher
            )
            write_private(attestations_path, attestations.encode())
            digest = hashlib.sha256(attestations.encode()).hexdigest()
            entry = dataclasses.replace(entry, attestations_sha256=digest)
        metadata = await asyncio.to_thread(extract_core_metadata, path, entry.dist)
        if metadata is not None:
            write_private(metadata_path, metadata)
            requires_python = parse_metadata(metadata, entry.filename).get("requires_python")
            entry = dataclasses.replace(
                entry,
                metadata_sha256=hashlib.sha256(metadata).hexdigest(),
                requires_python=requires_python or entry.requires_python,
            )
        yield Upload(
            entry=entry,
            path=path,
            metadata_path=metadata_path if metadata is not None else None,
            attestations_path=attestations_path if attestations else None,
        )
    finally:
        for temp_path in (path, metadata_path, attestations_path):
            temp_path.unlink(missing_ok=True)


class _ReceivedFile:
    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.size = 0
        self.hashes = new_digests()

    def update(self, chunk: bytes) -> None:
        self.size += len(chunk)
        for digest in self.hashes.values():
            digest.update(chunk)


async def _read_form(
    req: falcon.asgi.Request, temp: BinaryIO, max_file_bytes: int
) -> tuple[dict[str, str], _ReceivedFile]:
    fields: dict[str, str] = {}
    fields_bytes = 0
    received: _ReceivedFile | None = None
    try:
        form = await req.get_media()
        async for part in form:
            if part.name == FILE_FIELD:
                if received is not None:
                    raise BadRequest("The form has more than one 'content' file.")
                received = _ReceivedFile(part.filename or "")
                async for chunk in part.stream:
                    received.update(chunk)
                    if received.size > max_file_bytes:
                        raise PayloadTooLarge(_too_large(max_file_bytes))
                    temp.write(chunk)
            else:
                # Repeated fields (classifiers, requires_dist) keep their first value: the
                # index needs none of them.
                data = await part.get_data()
                fields_bytes += len(data)
                if fields_bytes > FORM_OVERHEAD_BYTES:
                    raise PayloadTooLarge(
                        f"The upload's text fields exceed {FORM_OVERHEAD_BYTES >> 20} MiB."
                    )
                fields.setdefault(part.name, data.decode("utf-8", errors="replace"))
    except (MultipartParseError, falcon.MediaMalformedError) as error:
        raise BadRequest(f"The upload form cannot be read: {_describe(error)}") from None
    if received is None:
        raise BadRequest("The upload has no 'content' field with the file to publish.")
    return fields, received


def _checked_entry(fields: dict[str, str], received: _ReceivedFile) -> IndexEntry:
    action = fields.get(":action", "file_upload")
    if action != "file_upload":
        raise BadRequest(f"Unsupported :action {action!r}; only 'file_upload' is supported.")
    dist = parse_dist_filename(received.filename)
    if received.size == 0:
        raise BadRequest(f"{received.filename!r} is empty.")
    if "name" in fields and validate_project(fields["name"]) != dist.project:
        raise BadRequest(
            f"The filename {received.filename!r} names project {dist.project!r}, "
            f"but the form says name={fields['name']!r}."
        )
    if "version" in fields and not _same_version(fields["version"], dist.version):
        raise BadRequest(
            f"The filename {received.filename!r} names version {dist.version}, "
            f"but the form says version={fields['version']!r}."
        )
    filetype = fields.get("filetype")
    if filetype in FILETYPE_SUFFIXES and not received.filename.endswith(
        FILETYPE_SUFFIXES[filetype]
    ):
        raise BadRequest(f"filetype={filetype!r} does not match the file {received.filename!r}.")
    for field_name, algorithm in DIGEST_FIELDS.items():
        sent = fields.get(field_name, "").strip().lower()
        if sent and sent != received.hashes[algorithm].hexdigest():
            raise BadRequest(
                f"The {field_name} sent does not match the file received: "
                "the upload was corrupted on the way; try again."
            )
    return IndexEntry(
        filename=received.filename,
        project=dist.project,
        version=dist.version,
        sha256=received.hashes["sha256"].hexdigest(),
        md5=received.hashes["md5"].hexdigest(),
        blake2b_256=received.hashes["blake2b_256"].hexdigest(),
        size=received.size,
        upload_time=datetime.now(UTC),
        requires_python=_requires_python(fields.get("requires_python", "")),
    )


def _same_version(sent: str, parsed: str) -> bool:
    try:
        return Version(sent) == Version(parsed)
    except InvalidVersion:
        return False


def _requires_python(value: str) -> str | None:
    value = value.strip()
    if not value:
        return None
    try:
        SpecifierSet(value)
    except InvalidSpecifier:
        raise BadRequest(f"requires_python={value!r} is not a valid version specifier.") from None
    return value


def _too_large(max_file_bytes: int) -> str:
    return f"The file is larger than this repository accepts (max_file_bytes = {max_file_bytes})."


def _describe(error: Exception) -> str:
    return getattr(error, "description", None) or str(error) or type(error).__name__
