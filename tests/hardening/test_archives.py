"""Hostile archives against a real server (one worker): archive bombs are refused within seconds
and without the worker's memory growing, damaged archives are answered 400 naming the problem
(not 500 with a traceback), and neither stores nor lists anything. Real distributions with tens
of thousands of files still upload.
"""

from __future__ import annotations

import gzip
import io
import struct
import tarfile
import time
import zipfile
from collections.abc import Callable, Iterator

import pytest
import requests
from packaging.utils import canonicalize_name

from private_pypi_core.archives import (
    MAX_EXTENSION_BYTES,
    MAX_MEMBERS,
    MAX_SECONDS,
    MAX_UNPACKED_BYTES,
)
from tests.hardening.support import (
    PeakMemory,
    ServerSpec,
    assert_same_snapshot,
    fs_table,
    listing,
    snapshot,
    upload,
    wait_for_workers,
    wheel_bytes,
    wheel_name,
)
from tests.server import RunningServer

MAX_GROWTH_BYTES = 100 << 20  # the most a refused bomb may add to the worker's peak memory
QUICKLY = 8.0  # seconds: a bomb's answer must come well before the MAX_SECONDS backstop
PKG_INFO = "Metadata-Version: 2.2\nName: {name}\nVersion: {version}\n\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """Repository ``local`` (one worker) holding kept-pkg 1.0."""
    spec = ServerSpec(
        tmp_path_factory.mktemp("archives") / "root", {"local": fs_table("local")}, ("--workers=1",)
    )
    running = spec.start()
    try:
        wait_for_workers(running, 1)
        data = wheel_bytes("kept-pkg", "1.0")
        response = upload(
            running, wheel_name("kept-pkg", "1.0"), data, name="kept-pkg", version="1.0"
        )
        assert response.status_code == 200, response.text
        yield running
    finally:
        running.stop()


# --- Building archives ------------------------------------------------------------------------


def tar_member(
    name: str, data: bytes = b"", *, size: int | None = None, kind: bytes = tarfile.REGTYPE
) -> bytes:
    """One tar member: its header, then ``data`` padded to whole blocks. ``size`` claims another
    size than ``data`` has (the data then follows separately)."""
    info = tarfile.TarInfo(name)
    info.size, info.type, info.mtime = len(data) if size is None else size, kind, 0
    return info.tobuf(tarfile.USTAR_FORMAT) + data + bytes(-len(data) % tarfile.BLOCKSIZE)


def repeated_gzip(data: bytes, times: int) -> bytes:
    """``data`` repeated ``times``, gzipped in no time: a gzip file may be a series of gzip
    members (RFC 1952), read back as one stream by gzip, tarfile and pip alike."""
    return gzip.compress(data, mtime=0) * times


def sdist_tail(name: str, version: str) -> bytes:
    """The gzipped end of an sdist: its PKG-INFO, last (as hatchling and flit write it), and the
    end-of-archive blocks."""
    pkg_info = PKG_INFO.format(name=name, version=version).encode()
    return gzip.compress(
        tar_member(f"{name}-{version}/PKG-INFO", pkg_info) + bytes(2 * tarfile.BLOCKSIZE), mtime=0
    )


def million_member_sdist(name: str, version: str) -> bytes:
    """1,048,576 empty files, then PKG-INFO: about 2.3 MB gzipped."""
    empty = tar_member(f"{name}-{version}/empty")
    return repeated_gzip(empty * 4096, 256) + sdist_tail(name, version)


def gzip_bomb_sdist(name: str, version: str) -> bytes:
    """One file of zeros that unpacks past MAX_UNPACKED_BYTES, then PKG-INFO: about 1 MB."""
    mib = (MAX_UNPACKED_BYTES >> 20) + 64
    header = gzip.compress(tar_member(f"{name}-{version}/zeros", size=mib << 20), mtime=0)
    return header + repeated_gzip(bytes(1 << 20), mib) + sdist_tail(name, version)


def extension_bomb_sdist(name: str, version: str, kind: bytes) -> bytes:
    """A 256 MiB pax header or GNU long name (which tarfile reads whole into memory), then
    PKG-INFO: about 256 KB."""
    mib = 256
    header = gzip.compress(tar_member("././@LongLink", size=mib << 20, kind=kind), mtime=0)
    return header + repeated_gzip(bytes(1 << 20), mib) + sdist_tail(name, version)


def many_file_sdist(name: str, version: str, count: int) -> bytes:
    """A real-looking sdist of ``count`` small source files, PKG-INFO last."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as sdist:
        for index in range(count):
            data = f"VALUE = {index}\n".encode()
            info = tarfile.TarInfo(f"{name}-{version}/src/{name}/module_{index:05d}.py")
            info.size = len(data)
            sdist.addfile(info, io.BytesIO(data))
        data = PKG_INFO.format(name=name, version=version).encode()
        info = tarfile.TarInfo(f"{name}-{version}/PKG-INFO")
        info.size = len(data)
        sdist.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def many_file_wheel(name: str, version: str, count: int) -> bytes:
    """A real-looking wheel of ``count`` small modules."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as wheel:
        for index in range(count):
            wheel.writestr(f"{name}/module_{index:05d}.py", f"VALUE = {index}\n")
        dist_info = f"{name}-{version}.dist-info"
        wheel.writestr(f"{dist_info}/METADATA", PKG_INFO.format(name=name, version=version))
        wheel.writestr(f"{dist_info}/WHEEL", "Wheel-Version: 1.0\nTag: py3-none-any\n")
    return buffer.getvalue()


def million_entry_zip(*, declared: int) -> bytes:
    """A zip whose central directory holds 1,000,000 entries (47 MB), declaring ``declared``:
    in a zip64 end record when it does not fit the classic one."""
    count = 1_000_000
    entry = struct.pack(
        "<4s4B4HL2L5H2L", b"PK\x01\x02", 20, 3, 20, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0
    )
    directory = (entry + b"x") * count
    if declared <= 0xFFFF:
        end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, declared, declared, len(directory), 0, 0)
        return directory + end
    zip64_end = struct.pack(
        "<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, declared, declared, len(directory), 0
    )
    locator = struct.pack("<4sLQL", b"PK\x06\x07", 0, len(directory), 1)
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    return directory + zip64_end + locator + end


def patched_metadata(
    name: str, version: str, patch: Callable[[bytearray, int, int], None]
) -> bytes:
    """A wheel whose METADATA entry is patched: ``patch(data, local, central)`` gets the offsets
    of the entry's local header and of its central directory record."""
    data = bytearray(wheel_bytes(name, version))
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as wheel:
        (info,) = [i for i in wheel.infolist() if i.filename.endswith("/METADATA")]
    central = data.rindex(info.filename.encode()) - 46
    assert data[central : central + 4] == b"PK\x01\x02"
    patch(data, info.header_offset, central)
    return bytes(data)


def encrypt(data: bytearray, local: int, central: int) -> None:
    data[local + 6] |= 0x1  # general purpose flag bit 0: encrypted
    data[central + 8] |= 0x1


def unknown_method(data: bytearray, local: int, central: int) -> None:
    struct.pack_into("<H", data, local + 8, 99)
    struct.pack_into("<H", data, central + 10, 99)


def corrupt_deflate(data: bytearray, local: int, central: int) -> None:
    name_length, extra_length = struct.unpack_from("<2H", data, local + 26)
    data[local + 30 + name_length + extra_length] = 0xFF  # a deflate block of type 3: invalid


# --- What a user and an operator notice ------------------------------------------------------


def upload_refused(
    server: RunningServer, filename: str, data: bytes, *, name: str, version: str
) -> tuple[requests.Response, float, int]:
    """Upload a hostile file; check it changed nothing and logged no traceback. The answer, the
    seconds it took and the growth of the worker's peak memory."""
    before = snapshot(server)
    log_start = len(server.log())
    memory = PeakMemory(server, 1)
    start = time.monotonic()
    response = upload(server, filename, data, name=name, version=version)
    elapsed = time.monotonic() - start
    growth = memory.growth_kib() << 10
    assert_same_snapshot(before, snapshot(server))
    assert canonicalize_name(name) not in listing(server), f"{name} is listed"
    new_log = server.log()[log_start:]
    assert "Traceback" not in new_log, new_log
    assert len(memory.pids) == 1 and memory.pids == wait_for_workers(server, 1), "worker restarted"
    return response, elapsed, growth


def assert_bad_request(response: requests.Response, *phrases: str) -> None:
    assert response.status_code == 400, f"{response.status_code}: {response.text!r}"
    for phrase in phrases:
        assert phrase in response.text, f"{phrase!r} not in {response.text!r}"
    assert "Traceback" not in response.text and len(response.text) < 2000, response.text


# --- Archive bombs ----------------------------------------------------------------------------


def test_sdist_of_a_million_members_is_refused_in_seconds_and_bounded_memory(
    server: RunningServer,
) -> None:
    data = million_member_sdist("bomb-members", "1.0")
    response, elapsed, growth = upload_refused(
        server, "bomb_members-1.0.tar.gz", data, name="bomb-members", version="1.0"
    )
    assert_bad_request(response, "'bomb_members-1.0.tar.gz' is refused", f"{MAX_MEMBERS:,} members")
    assert elapsed < QUICKLY, f"refused after {elapsed:.1f}s"
    assert growth < MAX_GROWTH_BYTES, f"the worker's peak memory grew {growth >> 20} MiB"


def test_sdist_unpacking_past_the_byte_limit_is_refused(server: RunningServer) -> None:
    data = gzip_bomb_sdist("bomb-bytes", "1.0")
    response, elapsed, growth = upload_refused(
        server, "bomb_bytes-1.0.tar.gz", data, name="bomb-bytes", version="1.0"
    )
    assert_bad_request(
        response, "is refused", f"unpacks to more than {MAX_UNPACKED_BYTES >> 20:,} MiB"
    )
    assert elapsed < MAX_SECONDS + 2, f"refused after {elapsed:.1f}s"
    assert growth < MAX_GROWTH_BYTES, f"the worker's peak memory grew {growth >> 20} MiB"


@pytest.mark.parametrize(
    "kind", [tarfile.XHDTYPE, tarfile.GNUTYPE_LONGNAME], ids=["pax-header", "gnu-long-name"]
)
def test_sdist_with_a_huge_extended_header_is_refused_before_reading_it(
    server: RunningServer, kind: bytes
) -> None:
    name = f"bomb_header_{kind.decode().lower()}"
    data = extension_bomb_sdist(name, "1.0", kind)
    response, elapsed, growth = upload_refused(
        server, f"{name}-1.0.tar.gz", data, name=name, version="1.0"
    )
    assert_bad_request(
        response,
        "is refused",
        f"extended header (pax or GNU), more than the {MAX_EXTENSION_BYTES >> 10} KiB",
    )
    assert elapsed < QUICKLY, f"refused after {elapsed:.1f}s"
    assert growth < MAX_GROWTH_BYTES, f"the worker's peak memory grew {growth >> 20} MiB"


@pytest.mark.parametrize(
    ("declared", "message"),
    [
        (1_000_000, "its central directory lists 1,000,000 entries"),
        (1, f"its central directory holds more than {MAX_MEMBERS:,} entries"),
    ],
    ids=["declared-in-zip64", "declared-as-one"],
)
def test_wheel_of_a_million_entries_is_refused_before_its_directory_is_parsed(
    server: RunningServer, declared: int, message: str
) -> None:
    data = million_entry_zip(declared=declared)
    filename = wheel_name("bomb-entries", "1.0")
    response, elapsed, growth = upload_refused(
        server, filename, data, name="bomb-entries", version="1.0"
    )
    assert_bad_request(response, f"{filename!r} is refused", message)
    assert elapsed < QUICKLY, f"refused after {elapsed:.1f}s"
    assert growth < MAX_GROWTH_BYTES, f"the worker's peak memory grew {growth >> 20} MiB"


# --- Damaged archives -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("patch", "problem"),
    [
        (corrupt_deflate, "its METADATA cannot be decompressed"),
        (encrypt, "its METADATA is encrypted"),
        (unknown_method, "its METADATA uses compression method 99, which is not supported"),
    ],
    ids=["corrupt-deflate", "encrypted", "compression-method-99"],
)
def test_damaged_wheel_metadata_is_a_400_naming_the_problem(
    server: RunningServer, patch: Callable[[bytearray, int, int], None], problem: str
) -> None:
    data = patched_metadata("damaged-pkg", "1.0", patch)
    filename = wheel_name("damaged-pkg", "1.0")
    response, _, _ = upload_refused(server, filename, data, name="damaged-pkg", version="1.0")
    assert_bad_request(response, f"{filename!r} is not a valid archive: {problem}")


# --- Real distributions still pass ------------------------------------------------------------


@pytest.mark.parametrize("kind", ["wheel", "sdist"])
def test_distribution_of_twenty_thousand_files_still_uploads(
    server: RunningServer, kind: str
) -> None:
    name, version = f"big-{kind}", "1.0"
    if kind == "wheel":
        filename, data = wheel_name(name, version), many_file_wheel("big_wheel", version, 20_000)
    else:
        filename, data = (
            f"{name.replace('-', '_')}-{version}.tar.gz",
            many_file_sdist(name, version, 20_000),
        )
    response = upload(server, filename, data, name=name, version=version)
    assert response.status_code == 200, response.text
    assert [listed for listed, _ in listing(server)[name]] == [filename]
