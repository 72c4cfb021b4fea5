"""Connections against a real server (2 workers): request heads too large or too slow are
answered and closed before the app runs, without a worker holding more than the limit; idle
connections are closed; a worker holds at most ``worker_connections``; no answer names the
server software. Real clients' requests keep being served throughout."""

from __future__ import annotations

import contextlib
import re
import select
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import chain

import pytest
import requests

from tests.hardening.support import (
    HTTP_TIMEOUT,
    PeakMemory,
    RawResponse,
    ServerSpec,
    connect,
    fs_table,
    read_auth,
    read_response,
    wait_for_workers,
    wait_until,
)
from tests.server import RunningServer

HEADER_TIMEOUT = 2  # seconds, through --header_timeout
BODY_TIMEOUT = 2  # seconds, through --body_timeout
KEEPALIVE = 1  # seconds, through gunicorn's --keepalive
MARGIN = 3  # seconds a close may come late on two busy cores
# gunicorn's defaults, and the head limit they give: the longest line and field, and 4 KiB.
LINE, FIELDS, FIELD, HEAD = 4094, 100, 8190, 4094 + 8190 + 4096
RSS_GROWTH_MB = 20
PIP_HEADERS = {
    "User-Agent": (
        'pip/24.2 {"ci":null,"cpu":"x86_64","distro":{"id":"bookworm","libc":{"lib":"glibc",'
        '"version":"2.36"},"name":"Debian GNU/Linux","version":"12"},"implementation":'
        '{"name":"CPython","version":"3.11.9"},"installer":{"name":"pip","version":"24.2"},'
        '"openssl_version":"OpenSSL 3.0.13 30 Jan 2024","python":"3.11.9","rustc_version":'
        '"1.79.0","setuptools_version":"70.3.0","system":{"name":"Linux","release":"6.1.0"}}'
    ),
    "Accept-Encoding": "gzip, deflate",
    "Accept": (
        "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, "
        "text/html; q=0.01"
    ),
    "Cache-Control": "max-age=0",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    spec = ServerSpec(
        tmp_path_factory.mktemp("connections") / "root",
        {"local": fs_table("local")},
        (
            "--workers=2",
            f"--header_timeout={HEADER_TIMEOUT}",
            f"--body_timeout={BODY_TIMEOUT}",
            f"--keepalive={KEEPALIVE}",
        ),
    )
    running = spec.start()
    try:
        wait_for_workers(running, 2)
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One worker, with gunicorn's limits set small."""
    spec = ServerSpec(
        tmp_path_factory.mktemp("small") / "root",
        {"local": fs_table("local")},
        (
            "--workers=1",
            "--worker_connections=20",
            "--limit_request_line=200",
            "--limit_request_fields=10",
            "--limit_request_field_size=300",
        ),
    )
    running = spec.start()
    try:
        wait_for_workers(running, 1)
        yield running
    finally:
        running.stop()


# --- Requests written byte by byte --------------------------------------------------------


def head(target: str, fields: dict[str, str] | Iterable[tuple[str, str]] = ()) -> bytes:
    """A GET request head, ``Host`` first, then ``fields`` as given."""
    pairs = fields.items() if isinstance(fields, dict) else fields
    lines = [f"GET {target} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in pairs)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def ask(
    port: int, data: bytes | Iterable[bytes], timeout: float = HTTP_TIMEOUT
) -> RawResponse | None:
    """Send ``data`` (bytes, or pieces of them), stopping early if the server answers or hangs
    up, and read one answer; ``None`` when the server closed without one."""
    pieces = (
        [data[i : i + 65536] for i in range(0, len(data), 65536)]
        if isinstance(data, bytes)
        else data
    )
    with connect(port, timeout=timeout) as sock:
        try:
            for piece in pieces:
                sock.sendall(piece)
                if select.select([sock], [], [], 0)[0]:
                    break
        except OSError:  # the server answered and hung up while we were still sending
            pass
        try:
            return read_response(sock, timeout=timeout)
        except (ConnectionError, TimeoutError):
            return None


def padded_to(size: int, target: str, fields: dict[str, str]) -> bytes:
    """A head of exactly ``size`` bytes: ``fields`` and ``X-Pad-N`` fields of 4000 bytes or
    less (well within the size of one field) that fill up."""
    padding: list[tuple[str, str]] = []
    while len(data := head(target, [*fields.items(), *padding])) < size:
        name = f"X-Pad-{len(padding)}"
        room = size - len(data) - len(f"{name}: \r\n")
        padding.append((name, "p" * max(0, min(room, 4000))))
    assert len(data) == size, f"the head is {len(data)} bytes, not {size}"
    return data


def credentials(server: RunningServer) -> dict[str, str]:
    return {**read_auth(server), "Connection": "close"}


# --- Worker memory ----------------------------------------------------------------------------


def peak_rss_growth_mb(server: RunningServer, attack: Callable[[], None]) -> float:
    """How far ``attack`` raised the resident memory of the worker it hit, at its peak."""
    memory = PeakMemory(server, 2)
    attack()
    return memory.growth_kib() / 1024


# --- Oversized heads ----------------------------------------------------------------------------


def assert_refused_at_little_cost(server: RunningServer, data: bytes | Iterable[bytes]) -> None:
    """The request ``data`` is answered 431 (or its connection closed) within seconds, no
    worker's resident memory grows by more than ``RSS_GROWTH_MB``, and pip is served after."""
    answers: list[RawResponse | None] = []
    started = time.monotonic()
    growth = peak_rss_growth_mb(server, lambda: answers.append(ask(server.port, data)))
    elapsed = time.monotonic() - started
    status = answers[0].status if answers[0] else "closed"
    report = f"answered {status} in {elapsed:.1f}s, a worker grew by {growth:.0f} MB at its peak"
    assert status in (431, "closed"), report
    assert growth < RSS_GROWTH_MB, report
    assert elapsed < 5, report
    real = ask(server.port, head("/simple/", {**PIP_HEADERS, **credentials(server)}))
    assert real is not None and real.status == 200, real


def test_an_8_mib_authorization_header_is_refused_at_little_cost(server: RunningServer) -> None:
    huge = "Basic " + "A" * (8 << 20)
    assert_refused_at_little_cost(server, head("/simple/", {"Authorization": huge}))


def test_800_distinct_headers_of_1_mib_are_refused_at_little_cost(server: RunningServer) -> None:
    line = b"v" * (1 << 20)
    fields = (b"X-Pad-%03d: %s\r\n" % (n, line) for n in range(800))
    start = b"GET /simple/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    assert_refused_at_little_cost(server, chain([start], fields, [b"\r\n"]))


LIMITS = {
    # name: (the largest head served, one byte or one field more: refused with this status)
    "request target": (
        lambda c: head("/simple/?" + "q" * (LINE - len("/simple/?")), c),
        lambda c: head("/simple/?" + "q" * (LINE + 1 - len("/simple/?")), c),
        414,
    ),
    "field count": (
        lambda c: head("/simple/", [*c.items(), *((f"X-{n}", "1") for n in range(FIELDS - 3))]),
        lambda c: head("/simple/", [*c.items(), *((f"X-{n}", "1") for n in range(FIELDS - 2))]),
        431,
    ),
    "field size (a long User-Agent)": (
        lambda c: head("/simple/", {**c, "User-Agent": "u" * (FIELD - len("User-Agent: \r\n"))}),
        lambda c: head(
            "/simple/", {**c, "User-Agent": "u" * (FIELD + 1 - len("User-Agent: \r\n"))}
        ),
        431,
    ),
    "whole head": (
        lambda c: padded_to(HEAD, "/simple/", c),
        lambda c: padded_to(HEAD + 1, "/simple/", c),
        431,
    ),
}


@pytest.mark.parametrize("limit", LIMITS)
def test_each_limit_serves_a_head_at_it_and_refuses_one_over_it(
    server: RunningServer, limit: str
) -> None:
    largest, over, status = LIMITS[limit]
    served = ask(server.port, largest(credentials(server)))
    assert served is not None and served.status == 200, served
    refused = ask(server.port, over(credentials(server)))
    assert refused is not None and refused.status == status, refused
    assert refused.header("Connection") == "close"


def test_gunicorn_limit_settings_move_the_limits(small: RunningServer) -> None:
    auth = credentials(small)
    served = ask(small.port, head("/simple/", auth))
    assert served is not None and served.status == 200, served
    long_target = ask(small.port, head("/simple/?" + "q" * 200, auth))
    assert long_target is not None and long_target.status == 414, long_target
    many = ask(small.port, head("/simple/", [*auth.items(), *((f"X-{n}", "1") for n in range(9))]))
    assert many is not None and many.status == 431, many
    large = ask(small.port, head("/simple/", {**auth, "User-Agent": "u" * 300}))
    assert large is not None and large.status == 431, large


def pipelined_statuses(sock: socket.socket, data: bytes) -> list[int]:
    """Send ``data`` (requests, the last one asking to close) and the statuses of the answers,
    read to the end of the connection."""
    sock.sendall(data)
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    statuses = []
    while received:
        answer, _, rest = received.partition(b"\r\n\r\n")
        length = re.search(rb"(?im)^content-length: *(\d+)", answer)
        assert length, f"an answer without Content-Length: {answer!r}"
        statuses.append(int(answer.split()[1]))
        received = rest[int(length.group(1)) :]
    return statuses


def test_pipelined_requests_are_limited_one_by_one(server: RunningServer) -> None:
    auth = {**PIP_HEADERS, **read_auth(server)}
    body = b"hello"
    post = head("/simple/", {**auth, "Content-Length": str(len(body))}).replace(b"GET", b"POST")
    many = head("/simple/", auth) * 59 + head("/simple/", {**auth, "Connection": "close"})
    assert len(many) > HEAD  # more than one head's limit in all, in one write
    with connect(server.port) as sock:
        statuses = pipelined_statuses(sock, post + body + many)
    assert len(statuses) == 61 and statuses[1:] == [200] * 60, statuses

    with connect(server.port) as sock:
        over = padded_to(HEAD + 1, "/simple/", auth)
        statuses = pipelined_statuses(sock, head("/simple/", auth) + over)
    assert statuses == [200, 431]

    behind_a_body = padded_to(HEAD + 1, "/simple/", {**auth, "Connection": "close"})
    with connect(server.port) as sock:
        statuses = pipelined_statuses(sock, post + body + behind_a_body)
    assert statuses[1:] == [431], statuses


# --- Slow and idle connections ------------------------------------------------------------------


@dataclass(frozen=True)
class Closed:
    at: float  # time.monotonic()
    said: bytes  # what the server sent before closing


def closed_within(socks: list[socket.socket], deadline: float) -> dict[socket.socket, Closed]:
    """The sockets the server closed by ``deadline`` (monotonic), with what it said first."""
    open_socks, said, closed = set(socks), dict.fromkeys(socks, b""), {}
    while open_socks and time.monotonic() < deadline:
        readable, _, _ = select.select(list(open_socks), [], [], 0.05)
        for sock in readable:
            try:
                data = sock.recv(65536)
            except OSError:
                data = b""
            said[sock] += data
            if not data:
                closed[sock] = Closed(time.monotonic(), said[sock])
                open_socks.discard(sock)
    return closed


def test_300_half_request_lines_are_closed_while_a_real_client_is_served(
    server: RunningServer,
) -> None:
    opened = time.monotonic()
    slow = [connect(server.port) for _ in range(300)]
    try:
        for sock in slow:
            sock.sendall(b"GET /simple/ HT")
        asked = time.monotonic()
        real = requests.get(server.simple_url, headers=PIP_HEADERS | read_auth(server), timeout=5)
        answered = time.monotonic() - asked
        assert real.status_code == 200 and answered < 1, (real.status_code, answered)

        closed = closed_within(slow, opened + HEADER_TIMEOUT + MARGIN)
        assert len(closed) == 300, f"{300 - len(closed)} slow connections still open"
        first = min(close.at for close in closed.values()) - opened
        assert first >= HEADER_TIMEOUT - 0.5, f"closed {first:.1f}s after opening"
        said = {close.said.split(b"\r\n")[0] for close in closed.values()}
        assert said == {b"HTTP/1.1 408 Request Timeout"}, said
        assert not any(b"server:" in close.said.lower() for close in closed.values())
    finally:
        for sock in slow:
            sock.close()


def test_bodies_promised_but_not_sent_are_closed_while_a_real_client_is_served(
    server: RunningServer,
) -> None:
    """Without credentials. With no body byte the app does not even run to refuse them; with
    a few it refuses them, and the connection still waits for the rest."""
    opened = time.monotonic()
    stalled = [connect(server.port) for _ in range(100)]
    try:
        for i, sock in enumerate(stalled):
            path = ["/simple/", "/login/", "/initialize/", "/yank/"][i % 4]
            fields = {"Content-Length": "100000", "Content-Type": "text/plain"}
            sock.sendall(head(path, fields).replace(b"GET ", b"POST ", 1))
            if i % 2:
                sock.sendall(b"x" * 1000)  # a start, then nothing more
        real = requests.get(server.simple_url, headers=PIP_HEADERS | read_auth(server), timeout=5)
        assert real.status_code == 200
        closed = closed_within(stalled, opened + BODY_TIMEOUT + MARGIN)
        assert len(closed) == 100, f"{100 - len(closed)} stalled requests still open"
    finally:
        for sock in stalled:
            sock.close()


def test_a_silent_connection_is_closed_after_the_header_timeout(server: RunningServer) -> None:
    with connect(server.port) as sock:
        opened = time.monotonic()
        closed = closed_within([sock], opened + HEADER_TIMEOUT + MARGIN)
        assert sock in closed, "the silent connection is still open"
        assert closed[sock].said == b""
        assert closed[sock].at - opened >= HEADER_TIMEOUT - 0.5


def test_kept_alive_connections_close_when_idle_or_trickling(server: RunningServer) -> None:
    request = head("/simple/", {**PIP_HEADERS, **read_auth(server)})
    with connect(server.port) as idle:
        idle.sendall(request)
        assert read_response(idle).status == 200
        answered = time.monotonic()
        closed = closed_within([idle], answered + KEEPALIVE + MARGIN)
        assert idle in closed, "the idle kept-alive connection is still open"
        assert closed[idle].said == b""
        assert closed[idle].at - answered < HEADER_TIMEOUT, "closed by the header timeout"

    with connect(server.port) as trickling:
        trickling.sendall(request)
        assert read_response(trickling).status == 200
        first_byte = time.monotonic()
        trickling.sendall(b"GET /simple/ HTTP/1.1\r\nX-Slow: ")
        closed: dict[socket.socket, Closed] = {}
        while not closed and time.monotonic() < first_byte + HEADER_TIMEOUT + MARGIN:
            with contextlib.suppress(OSError):  # closed between two looks
                trickling.sendall(b"s")
            closed = closed_within([trickling], time.monotonic() + 0.25)
        assert closed, "the trickling connection is still open"
        assert closed[trickling].said.startswith(b"HTTP/1.1 408 "), closed[trickling]


# --- Connections per worker ---------------------------------------------------------------------


def test_connections_beyond_worker_connections_are_refused_at_once(small: RunningServer) -> None:
    held = [connect(small.port) for _ in range(20)]  # the worker's 20 --worker_connections
    try:
        started = time.monotonic()
        refused = ask(small.port, head("/simple/", credentials(small)), timeout=3)
        assert refused is not None and refused.status == 503, refused
        assert time.monotonic() - started < 1
        assert refused.header("Server") is None
        assert not closed_within(held, time.monotonic() + 0.2), "a held connection was closed"
    finally:
        for sock in held:
            sock.close()

    def served() -> bool:
        try:
            return requests.get(small.simple_url, headers=read_auth(small), timeout=5).ok
        except requests.ConnectionError:
            return False

    assert wait_until(served, timeout=5)


# --- The server's name ----------------------------------------------------------------------------


def test_no_answer_names_the_server_software(server: RunningServer) -> None:
    auth = credentials(server)
    answers = {
        "page": ask(server.port, head("/simple/", auth)),
        "401": ask(server.port, head("/simple/", {"Connection": "close"})),
        "404": ask(server.port, head("/simple/no-such-project/", auth)),
        "400 for a malformed request": ask(server.port, b"NOT HTTP AT ALL\r\n\r\n"),
        "431": ask(server.port, padded_to(HEAD + 1, "/simple/", auth)),
    }
    for name, answer in answers.items():
        assert answer is not None, f"{name}: no answer"
        assert answer.header("Server") is None, f"{name}: Server: {answer.header('Server')}"
        text = (repr(answer.headers) + answer.text).lower()
        assert not re.search("uvicorn|gunicorn|falcon|httptools", text), f"{name}: {text}"
    statuses = [answer.status for answer in answers.values() if answer]
    assert statuses == [200, 401, 404, 400, 431], statuses
