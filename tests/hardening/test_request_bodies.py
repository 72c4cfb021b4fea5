"""Request bodies read before any credential is checked (the login form, a pristine server's
/initialize/): an attacker without a secret may make the server buffer only a few kilobytes,
for a few seconds, however large or slow the body they send."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.hardening.support import (
    HTTP_TIMEOUT,
    PeakMemory,
    RawResponse,
    chunk,
    connect,
    read_response,
    request_head,
    wait_for_workers,
)
from tests.server import RunningServer, start_server

URLENCODED = {"Content-Type": "application/x-www-form-urlencoded"}
MULTIPART_BOUNDARY = "attack-boundary"
MULTIPART = {"Content-Type": f"multipart/form-data; boundary={MULTIPART_BOUNDARY}"}
MiB = 1 << 20
RSS_GROWTH_LIMIT_KB = 20_000


@pytest.fixture
def pristine(tmp_path: Path) -> Iterator[RunningServer]:
    """One worker, so its memory is the memory every request used."""
    running = start_server(tmp_path / "root", "--extra_index_url=", "--workers=1")
    wait_for_workers(running, 1)
    yield running
    running.stop()


def stream_body(
    server: RunningServer,
    path: str,
    headers: dict[str, str],
    pieces: Iterator[bytes],
    *,
    content_length: int | None = None,
) -> RawResponse | None:
    """Send a request whose body comes from ``pieces`` (chunked unless ``content_length``),
    stopping as soon as the server answers or hangs up; its answer, or ``None``."""
    with connect(server.port) as sock:
        sock.sendall(request_head("POST", path, headers, content_length=content_length))
        for piece in pieces:
            try:
                sock.sendall(piece if content_length is not None else chunk(piece))
            except (BrokenPipeError, ConnectionResetError):
                break
            if _answered(sock):
                break
        else:
            if content_length is None:
                sock.sendall(b"0\r\n\r\n")
        try:
            return read_response(sock)
        except (TimeoutError, ConnectionError):
            return None


def _answered(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return bool(sock.recv(1, socket.MSG_PEEK))
    except BlockingIOError:
        return False
    except (ConnectionResetError, OSError):
        return True
    finally:
        sock.setblocking(True)
        sock.settimeout(HTTP_TIMEOUT)


def megabytes(count: int, byte: bytes = b"a") -> Iterator[bytes]:
    yield b"secret="
    for _ in range(count):
        yield byte * MiB


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_a_huge_login_form_is_refused_without_being_buffered(
    pristine: RunningServer, declared: bool
) -> None:
    memory = PeakMemory(pristine, 1)
    size = 256 * MiB + len(b"secret=")
    answer = stream_body(
        pristine, "/login/", URLENCODED, megabytes(256), content_length=size if declared else None
    )
    assert answer is not None and answer.status == 413, answer
    assert "larger than 16 KiB" in answer.text
    assert memory.growth_kib() < RSS_GROWTH_LIMIT_KB


def test_a_declared_huge_body_is_refused_after_its_first_bytes(pristine: RunningServer) -> None:
    with connect(pristine.port) as sock:
        sock.sendall(request_head("POST", "/login/", URLENCODED, content_length=4 << 30))
        sock.sendall(b"secret=" + b"a" * 1024)
        answer = read_response(sock)
    assert answer.status == 413, answer


def test_a_multipart_login_form_of_many_large_parts_is_refused(pristine: RunningServer) -> None:
    """300 parts of 1 MiB each took a worker to 347 MB."""
    memory = PeakMemory(pristine, 1)

    def parts() -> Iterator[bytes]:
        for i in range(300):
            yield (
                (
                    f"--{MULTIPART_BOUNDARY}\r\n"
                    f'Content-Disposition: form-data; name="field{i}"\r\n\r\n'
                ).encode()
                + b"x" * MiB
                + b"\r\n"
            )

    answer = stream_body(pristine, "/login/", MULTIPART, parts())
    assert answer is not None and answer.status == 413, answer
    assert memory.growth_kib() < RSS_GROWTH_LIMIT_KB


def test_a_pristine_servers_initialize_reads_a_bounded_form(pristine: RunningServer) -> None:
    memory = PeakMemory(pristine, 1)
    answer = stream_body(pristine, "/initialize/", URLENCODED, megabytes(64))
    assert answer is not None and answer.status == 413, answer
    assert "larger than 64 KiB" in answer.text
    assert memory.growth_kib() < RSS_GROWTH_LIMIT_KB
    assert not (pristine.root / "initialized").exists()


def test_a_form_with_too_many_fields_is_refused(pristine: RunningServer) -> None:
    body = "&".join(f"f{i}=x" for i in range(1000)).encode()
    answer = stream_body(pristine, "/login/", URLENCODED, iter([body]), content_length=len(body))
    assert answer is not None and answer.status == 400, answer
    assert "cannot be read" in answer.text


def test_a_login_form_sent_too_slowly_is_cut_off(pristine: RunningServer) -> None:
    started = time.monotonic()

    def trickle() -> Iterator[bytes]:
        while time.monotonic() - started < 30:
            yield b"a"
            time.sleep(0.5)

    answer = stream_body(pristine, "/login/", URLENCODED, trickle())
    elapsed = time.monotonic() - started
    assert answer is not None and answer.status == 408, answer
    assert elapsed < 15, elapsed
