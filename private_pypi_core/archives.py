"""Reading one small file out of an untrusted archive (an uploaded wheel or sdist) at a bounded
cost: at most ``MAX_MEMBERS`` archive members, ``MAX_UNPACKED_BYTES`` decompressed and
``MAX_SECONDS`` of work, whatever the archive claims.

The limits sit far above real distributions (the largest wheels and sdists hold tens of
thousands of files and unpack to a few hundred MB) and far below what hurts a worker: an sdist of
a million empty members (2 MB gzipped) used to cost a minute and 500 MB of memory.

A gzipped tar is walked here, block by block, rather than with ``tarfile``: on Python 3.11
``TarFile`` keeps a ``TarInfo`` for every member it has passed and reads extension headers
(pax, GNU long names, sparse maps) whole into memory, so its cost cannot be bounded. Each header
is still parsed by ``tarfile.TarInfo.frombuf``. A zip is read with ``zipfile`` once its central
directory is known to be small (``open_zip``).
"""

from __future__ import annotations

import contextlib
import gzip
import io
import lzma
import re
import struct
import tarfile
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import BinaryIO

MAX_MEMBERS = 100_000
MAX_UNPACKED_BYTES = 1 << 30  # inflating 1 GiB takes a second or two
MAX_SECONDS = 10.0
# A zip's central directory is read whole by zipfile: 64 MiB holds 100,000 entries with
# 600-character names.
MAX_DIRECTORY_BYTES = 64 << 20
# A pax header or GNU long name holds one member's path and a few fields; real ones are far
# below 64 KiB.
MAX_EXTENSION_BYTES = 64 << 10
# The compression methods zipfile reads (wheels use the first two).
ZIP_METHODS = {
    zipfile.ZIP_STORED: "stored",
    zipfile.ZIP_DEFLATED: "deflate",
    zipfile.ZIP_BZIP2: "bzip2",
    zipfile.ZIP_LZMA: "lzma",
}

_BLOCK = tarfile.BLOCKSIZE
_CHUNK = 1 << 20
_TAR_ENCODING = "utf-8"
_END_OF_TAR = bytes(_BLOCK)
_PAX_TYPES = (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE)
_GNU_LONG_TYPES = (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK)
_PAX_RECORD = re.compile(rb"(\d{1,19}) ([^=]+)=")
_ZIP_ENCRYPTED = 0x1

# The zip records zipfile reads, as the ZIP specification (APPNOTE.TXT) lays them out.
_END = struct.Struct("<4s4H2LH")
_END_SIGNATURE = b"PK\x05\x06"
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_LOCATOR_SIGNATURE = b"PK\x06\x07"
_ZIP64_END = struct.Struct("<4sQ2H2L4Q")
_ZIP64_END_SIGNATURE = b"PK\x06\x06"
_DIRECTORY_ENTRY = struct.Struct("<4s4B4HL2L5H2L")
_DIRECTORY_ENTRY_SIGNATURE = b"PK\x01\x02"
_MAX_COMMENT = 0xFFFF


class DamagedArchive(Exception):
    """The archive cannot be read; ``str(error)`` says why, as a clause ("its METADATA is
    encrypted")."""


class ArchiveOverLimit(Exception):
    """Reading the archive would cost more than a limit allows; ``str(error)`` names the limit."""


class Budget:
    """What reading one archive has cost so far; charging past a limit raises
    ``ArchiveOverLimit``."""

    def __init__(self) -> None:
        self.members = 0
        self.unpacked = 0
        self.deadline = time.monotonic() + MAX_SECONDS

    def add_member(self) -> None:
        self.members += 1
        if self.members > MAX_MEMBERS:
            raise ArchiveOverLimit(f"it has more than {MAX_MEMBERS:,} members, the most allowed.")
        self.check_time()

    def add_unpacked(self, size: int) -> None:
        self.unpacked += size
        if self.unpacked > MAX_UNPACKED_BYTES:
            raise ArchiveOverLimit(
                f"it unpacks to more than {MAX_UNPACKED_BYTES >> 20:,} MiB, the most allowed."
            )
        self.check_time()

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise ArchiveOverLimit(
                f"reading it took more than {MAX_SECONDS:g} seconds, the most allowed."
            )


# --- Gzipped tar ------------------------------------------------------------------------------


def read_tar_gz_member(
    source: Path | bytes, wanted: Callable[[str], bool], max_bytes: int, budget: Budget
) -> bytes | None:
    """The content of the first regular file of the .tar.gz at ``source`` (a path, or the
    archive's bytes) whose name is ``wanted``, or ``None`` when there is none. Members are read
    in order and forgotten."""
    with gzip.open(_readable(source), "rb") as stream:
        return _read_tar_member(_Unpacked(stream, budget), wanted, max_bytes, budget)


def _read_tar_member(
    reader: _Unpacked, wanted: Callable[[str], bool], max_bytes: int, budget: Budget
) -> bytes | None:
    global_fields: dict[str, str] = {}
    fields: dict[str, str] = {}  # from the pax header of the next member
    long_name: str | None = None
    first = True
    while True:
        block = reader.read(_BLOCK)
        if block == _END_OF_TAR:
            return None
        try:
            header = tarfile.TarInfo.frombuf(block, _TAR_ENCODING, "surrogateescape")
        except tarfile.HeaderError as error:
            if first:
                raise DamagedArchive(f"it is not a tar archive ({error}).") from None
            return None  # trailing garbage ends the archive, as tarfile reads it
        first = False
        budget.add_member()
        if header.type in _PAX_TYPES:
            pax = _pax_fields(reader.read_exactly(_extension_size(header)))
            (global_fields if header.type == tarfile.XGLTYPE else fields).update(pax)
            continue
        if header.type in _GNU_LONG_TYPES:
            data = reader.read_exactly(_extension_size(header))
            if header.type == tarfile.GNUTYPE_LONGNAME:
                long_name = data.split(b"\0", 1)[0].decode(_TAR_ENCODING, "surrogateescape")
            continue
        name, size, sparse = _apply_fields(header, long_name, {**global_fields, **fields})
        fields, long_name = {}, None
        if size < 0:
            raise DamagedArchive(f"its member {name!r} has a negative size.")
        if header.type == tarfile.GNUTYPE_SPARSE:
            sparse = True
            extended = bool(block[482])
            while extended:
                extended = bool(reader.read_exactly(_BLOCK)[504])
        if not header.isreg() and header.type in tarfile.SUPPORTED_TYPES:
            continue  # a directory, link or device: no data follows
        if header.isreg() and wanted(name):
            return _member_data(reader, name, size, sparse, max_bytes)
        reader.skip(_blocks(size))


def _apply_fields(
    header: tarfile.TarInfo, long_name: str | None, fields: dict[str, str]
) -> tuple[str, int, bool]:
    """The name, data size and sparseness of a member, as its extension headers amend them."""
    name, size, sparse = long_name or header.name, header.size, False
    for keyword, value in fields.items():
        if keyword in ("path", "GNU.sparse.name"):
            name = value.rstrip("/")
        elif keyword == "size":
            size = _pax_number(value)
        if keyword.startswith("GNU.sparse."):
            sparse = True
    return name, size, sparse


def _member_data(reader: _Unpacked, name: str, size: int, sparse: bool, max_bytes: int) -> bytes:
    base = PurePosixPath(name).name
    if sparse:
        raise DamagedArchive(f"its {base} is stored as a sparse file.")
    if size > max_bytes:
        raise ArchiveOverLimit(
            f"its {base} is larger than {max_bytes >> 20} MiB, the most allowed."
        )
    return reader.read_exactly(size)


def _extension_size(header: tarfile.TarInfo) -> int:
    if header.size < 0:
        raise DamagedArchive("it has an extended header of negative size.")
    if header.size > MAX_EXTENSION_BYTES:
        raise ArchiveOverLimit(
            f"it has a {header.size:,}-byte extended header (pax or GNU), more than the "
            f"{MAX_EXTENSION_BYTES >> 10} KiB allowed."
        )
    return _blocks(header.size)


def _pax_fields(data: bytes) -> dict[str, str]:
    """The records of a pax header, read as tarfile reads them."""
    fields = {}
    position = 0
    while match := _PAX_RECORD.match(data, position):
        length = int(match.group(1))
        if length == 0:
            raise DamagedArchive("it has a malformed pax header.")
        value = data[match.end(2) + 1 : match.start(1) + length - 1]
        fields[match.group(2).decode("utf-8", "surrogateescape")] = value.decode(
            "utf-8", "surrogateescape"
        )
        position += length
    return fields


def _pax_number(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        return 0  # as tarfile reads it


def _blocks(size: int) -> int:
    return -(-size // _BLOCK) * _BLOCK


class _Unpacked:
    """The decompressed stream of an archive; every byte read is charged to the budget."""

    def __init__(self, stream: gzip.GzipFile, budget: Budget) -> None:
        self._stream = stream
        self._budget = budget

    def read(self, size: int) -> bytes:
        try:
            data = self._stream.read(size)
        except (gzip.BadGzipFile, EOFError, zlib.error) as error:
            raise DamagedArchive(f"its compressed data is damaged ({error}).") from None
        self._budget.add_unpacked(len(data))
        return data

    def read_exactly(self, size: int) -> bytes:
        data = self.read(size)
        if len(data) < size:
            raise DamagedArchive("it ends in the middle of a member.")
        return data

    def skip(self, size: int) -> None:
        while size > 0:
            size -= len(self.read_exactly(min(size, _CHUNK)))


# --- Zip --------------------------------------------------------------------------------------


@contextlib.contextmanager
def open_zip(source: Path | bytes, budget: Budget) -> Iterator[zipfile.ZipFile]:
    """The zip at ``source`` (a path, or the archive's bytes), opened once its central
    directory is known to be within limits.

    ``zipfile.ZipFile`` reads the whole central directory and makes a ``ZipInfo`` of every entry
    before anything can be checked, and it ignores the entry counts the end record declares. So
    the end records are read here first, zip64 too, and the entries zipfile would parse are
    counted without keeping them.
    """
    with open(source, "rb") if isinstance(source, Path) else io.BytesIO(source) as file:
        _check_directory(file, budget)
    try:
        archive = zipfile.ZipFile(_readable(source))
    except UnicodeDecodeError as error:
        raise DamagedArchive(f"it has a member name that is not UTF-8 ({error}).") from None
    except NotImplementedError as error:
        raise DamagedArchive(f"it uses a zip feature that is not supported ({error}).") from None
    with archive:
        budget.check_time()
        yield archive


def read_zip_member(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, max_bytes: int, budget: Budget
) -> bytes:
    """The content of one member of a zip opened by ``open_zip``."""
    base = PurePosixPath(info.filename).name
    if info.flag_bits & _ZIP_ENCRYPTED:
        raise DamagedArchive(f"its {base} is encrypted.")
    if info.compress_type not in ZIP_METHODS:
        raise DamagedArchive(
            f"its {base} uses compression method {info.compress_type}, which is not supported "
            f"(use one of: {', '.join(ZIP_METHODS.values())})."
        )
    if info.file_size > max_bytes:
        raise ArchiveOverLimit(
            f"its {base} is larger than {max_bytes >> 20} MiB, the most allowed."
        )
    if info.header_offset < 0:
        raise DamagedArchive(f"its central directory places {base} before the start of the file.")
    chunks = []
    try:
        with archive.open(info) as member:
            while chunk := member.read(_CHUNK):
                chunks.append(chunk)
                budget.add_unpacked(len(chunk))
    except (zlib.error, lzma.LZMAError, EOFError, NotImplementedError) as error:
        raise DamagedArchive(f"its {base} cannot be decompressed ({error}).") from None
    except OSError as error:  # bz2 reports damaged data as an OSError
        if info.compress_type != zipfile.ZIP_BZIP2:
            raise
        raise DamagedArchive(f"its {base} cannot be decompressed ({error}).") from None
    return b"".join(chunks)


def _readable(source: Path | bytes) -> Path | io.BytesIO:
    """What ``open``, ``gzip.open`` and ``zipfile.ZipFile`` read an archive from."""
    return io.BytesIO(source) if isinstance(source, bytes) else source


def _check_directory(file: BinaryIO, budget: Budget) -> None:
    """Refuse a central directory over the limits, found where zipfile looks for it. A zip
    whose end record zipfile cannot find passes: zipfile refuses it."""
    end = _end_record(file)
    if end is None:
        return
    location, declared, size = end
    if declared > MAX_MEMBERS:
        raise ArchiveOverLimit(
            f"its central directory lists {declared:,} entries, more than the {MAX_MEMBERS:,} "
            "allowed."
        )
    if size > MAX_DIRECTORY_BYTES:
        raise ArchiveOverLimit(
            f"its central directory is {size:,} bytes, more than the "
            f"{MAX_DIRECTORY_BYTES >> 20} MiB allowed."
        )
    if location - size < 0:
        return
    file.seek(location - size)
    directory = file.read(size)
    position = entries = 0
    while position + _DIRECTORY_ENTRY.size <= len(directory):
        entry = _DIRECTORY_ENTRY.unpack_from(directory, position)
        if entry[0] != _DIRECTORY_ENTRY_SIGNATURE:
            return
        entries += 1
        if entries > MAX_MEMBERS:
            raise ArchiveOverLimit(
                f"its central directory holds more than {MAX_MEMBERS:,} entries, the most allowed."
            )
        position += _DIRECTORY_ENTRY.size + entry[12] + entry[13] + entry[14]
    budget.check_time()


def _end_record(file: BinaryIO) -> tuple[int, int, int] | None:
    """Where the central directory ends, how many entries it declares and its size in bytes,
    from the end record zipfile would use (``zipfile._EndRecData``, alike from Python 3.11 to
    3.13)."""
    file.seek(0, 2)
    file_size = file.tell()
    if file_size < _END.size:
        return None
    file.seek(file_size - _END.size)
    tail = file.read()
    if tail.startswith(_END_SIGNATURE) and tail.endswith(b"\0\0"):
        location = file_size - _END.size
    else:
        search_from = max(file_size - _MAX_COMMENT - 1 - _END.size, 0)
        file.seek(search_from)
        tail = file.read()
        found = tail.rfind(_END_SIGNATURE)
        if found < 0 or len(tail) - found < _END.size:
            return None
        location = search_from + found
        tail = tail[found:]
    end = _END.unpack_from(tail)
    declared, size = max(end[3], end[4]), end[5]
    zip64 = _zip64_end(file, location)
    if zip64 is None:
        return location, declared, size
    return zip64


def _zip64_end(file: BinaryIO, location: int) -> tuple[int, int, int] | None:
    record = location - _ZIP64_LOCATOR.size - _ZIP64_END.size
    if record < 0:
        return None
    file.seek(location - _ZIP64_LOCATOR.size)
    locator = _ZIP64_LOCATOR.unpack(file.read(_ZIP64_LOCATOR.size))
    if locator[0] != _ZIP64_LOCATOR_SIGNATURE:
        return None
    file.seek(record)
    end = _ZIP64_END.unpack(file.read(_ZIP64_END.size))
    if end[0] != _ZIP64_END_SIGNATURE:
        return None
    return record, max(end[6], end[7]), end[8]
