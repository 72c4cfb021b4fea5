"""The fast path (``web.fast_path``) answers each request it takes as the Falcon app would.

From outside: two servers on one ROOT, one with the fast path and one without
(``PRIVATE_PYPI_FAST_PATH=off``), get the same requests (pages and files; formats, encodings,
validators and ranges; credentials of every kind; a quarantined project; an anonymous-read
repository) and give the same answers: status, headers but Date, body. A page's Last-Modified
is when its server rendered it: only its presence is compared there.

In process: which requests the fast path takes (a reader it knows, a plain GET of a page, a
GET or HEAD of a file) and which it leaves to the Falcon app.
"""

from __future__ import annotations

import asyncio
import base64
import random
import socket
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from falcon.testing import TestClient

from private_pypi_core.state import ServerSettings
from private_pypi_core.throttle import FIRST_DELAY_SECONDS, FREE_FAILURES_PER_CLIENT
from private_pypi_core.web.app import create_app
from private_pypi_core.web.fast_path import SWITCH, FastPath
from private_pypi_core.web.observe import ASGIApp, Receive, Scope, Send
from private_pypi_core.web.runtime import Runtime
from tests.hardening.support import (
    HTTP_TIMEOUT,
    UPLOAD_CONTENT_TYPE,
    ServerSpec,
    auth,
    fs_table,
    sdist_bytes,
    sha256_hex,
    upload,
    upload_body,
    wheel_bytes,
    wheel_name,
)
from tests.protocol.helpers import HTML_V1, JSON_V1, PIP_ACCEPT, UV_ACCEPT
from tests.server import RunningServer, start_server

DEMO_VERSIONS = [f"1.{minor}" for minor in range(10)]  # a project page over 1 KB: gzipped
OTHER_PROJECTS = [f"pkg-{number:02d}" for number in range(20)]  # the root page too
WHEEL = f"/simple/demo-pkg/{wheel_name('demo-pkg', '1.0')}"
SDIST = "/simple/demo-pkg/demo_pkg-1.0.tar.gz"
QUARANTINED_WHEEL = f"/simple/quiet-pkg/{wheel_name('quiet-pkg', '1.0')}"
BIG_WHEEL = f"/simple/big-pkg/{wheel_name('big-pkg', '1.0')}"
BIG_PAYLOAD = random.Random(0).randbytes(2_000_000)  # a wheel of several reads of the store
PAGES = ["/simple/", "/simple/demo-pkg/", "/simple/quiet-pkg/"]
OWN_LAST_MODIFIED = "<the Last-Modified this server sent for the page>"
# Credentials that open nothing: each try is a failure the guess throttle counts, and past a
# few it holds the answers back, so these ask for a few things only.
REFUSED = {"wrong secret", "unknown repository", "bearer token"}
# Credentials sent with every variant of the other headers; the rest ask for each page and
# file plainly.
EVERY_VARIANT = {"none", "read secret", "token"}


@dataclass
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


@dataclass
class Connection:
    """A kept-alive connection to a server, reopened when the server closed it."""

    port: int
    sock: socket.socket | None = None

    def exchange(self, method: str, target: str, headers: Sequence[tuple[str, str]]) -> Answer:
        lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1"]
        lines += [f"{name}: {value}" for name, value in headers]
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        for attempt in (1, 2):
            if self.sock is None:
                self.sock = socket.create_connection(("127.0.0.1", self.port), HTTP_TIMEOUT)
            try:
                self.sock.sendall(request)
                return self._answer(method)
            except ConnectionError:
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _answer(self, method: str) -> Answer:
        assert self.sock is not None
        data = b""
        while b"\r\n\r\n" not in data:
            data += self._recv()
        head, _, body = data.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = [
            (name.lower(), value.strip())
            for name, _, value in (line.partition(":") for line in lines)
        ]
        status = int(status_line.split()[1])
        length = dict(headers).get("content-length")
        if method == "HEAD" or status in (204, 304) or length is None:
            assert not body, f"a body where none was due: {body[:100]!r}"
            body = b""
        else:
            while len(body) < int(length):
                body += self._recv()
        if dict(headers).get("connection") == "close":
            self.close()
        return Answer(status, headers, body)

    def _recv(self) -> bytes:
        assert self.sock is not None
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("closed")
        return chunk

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


@dataclass
class Pair:
    """A server with the fast path and one without, on the same ROOT (the same files, index,
    tokens and statuses), one worker each: one page cache, one auth cache."""

    fast: RunningServer
    falcon: RunningServer
    credentials: dict[str, dict[str, str]] = field(default_factory=dict)


def start_pair(spec: ServerSpec) -> tuple[RunningServer, RunningServer]:
    falcon = spec.know_secrets(
        start_server(spec.root, *spec.args("--workers=1"), env={SWITCH: "off"})
    )
    try:
        fast = spec.know_secrets(start_server(spec.root, *spec.args("--workers=1")))
    except BaseException:
        falcon.stop()
        raise
    return fast, falcon


def seed(server: RunningServer) -> None:
    """Projects enough for a gzipped root page, ``demo-pkg`` (ten wheels and an sdist),
    ``quiet-pkg``, quarantined, and ``big-pkg``, a wheel of a few MB."""
    dists = [(name, "1.0") for name in [*OTHER_PROJECTS, "quiet-pkg"]]
    dists += [("demo-pkg", version) for version in DEMO_VERSIONS]
    for name, version in dists:
        data = wheel_bytes(name, version)
        response = upload(server, wheel_name(name, version), data, name=name, version=version)
        assert response.ok, response.text
    big = wheel_bytes("big-pkg", "1.0", payload=BIG_PAYLOAD)
    response = upload(server, wheel_name("big-pkg", "1.0"), big, name="big-pkg", version="1.0")
    assert response.ok, response.text
    sdist = sdist_bytes("demo-pkg", "1.0", base="demo_pkg-1.0")
    response = upload(server, "demo_pkg-1.0.tar.gz", sdist, name="demo-pkg", version="1.0")
    assert response.ok, response.text
    response = requests.post(
        f"{server.url}/_/status/",
        data={"project": "quiet-pkg", "status": "quarantined", "reason": "under review"},
        headers=auth("local", server.secret("local", "write")),
        timeout=HTTP_TIMEOUT,
    )
    assert response.ok, response.text


def new_token(server: RunningServer, scopes: str) -> str:
    response = requests.post(
        f"{server.url}/_/tokens/",
        data={"scopes": scopes, "note": "fast path"},
        headers=auth("local", server.secret("local", "write")),
        timeout=HTTP_TIMEOUT,
    )
    assert response.status_code == 201, response.text
    token: str = response.json()["token"]
    return token


@pytest.fixture(scope="module", params=["private", "anonymous read"])
def pair(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pair]:
    anonymous = request.param == "anonymous read"
    table = fs_table("local", anonymous_read=True) if anonymous else fs_table("local")
    spec = ServerSpec(tmp_path_factory.mktemp("fast-path") / "root", {"local": table})
    fast, falcon = start_pair(spec)
    try:
        seed(falcon)
        read, write = spec.secret("local", "read"), spec.secret("local", "write")
        token, upload_token = new_token(falcon, "read"), new_token(falcon, "upload")
        basic = base64.b64encode(f"local:{read}".encode()).decode()
        yield Pair(
            fast,
            falcon,
            {
                "none": {},
                "read secret": auth("local", read),
                "write secret": auth("local", write),
                "token": auth("__token__", token),
                "token without read": auth("__token__", upload_token),
                "wrong secret": auth("local", "wrong"),
                "unknown repository": auth("nobody", read),
                "bearer token": {"Authorization": f"Bearer {token}"},
                "malformed": {"Authorization": f"Basic {basic[:-3]}!!"},
                "read secret and a cookie": {**auth("local", read), "Cookie": "a=b"},
                "a cookie": {"Cookie": "private_pypi_session=nothing"},
            },
        )
    finally:
        fast.stop()
        falcon.stop()


def etags(server: RunningServer, headers: Mapping[str, str]) -> dict[str, str]:
    """Each page's ETag, and the wheel's."""
    found = {
        path: requests.get(f"{server.url}{path}", headers=headers, timeout=HTTP_TIMEOUT).headers[
            "ETag"
        ]
        for path in PAGES
    }
    wheel = wheel_bytes("demo-pkg", "1.0")
    return {**found, WHEEL: f'"{sha256_hex(wheel)}"'}


def requests_for(
    credential: Mapping[str, str], tags: Mapping[str, str]
) -> list[tuple[str, str, list[tuple[str, str]]]]:
    """(method, target, headers): every page and file request of a client with ``credential``,
    in every form this index tells apart."""
    base = list(credential.items())
    cases: list[tuple[str, str, list[tuple[str, str]]]] = []
    targets = [
        *PAGES,
        "/simple/Demo_Pkg/",
        "/simple/demo-pkg",
        "/simple",
        "/simple/no-such-project/",
        "/simple/-not-valid-/",
        "/simple//",
        "/simple/?format=json",
        "/simple/demo-pkg/?format=html",
        WHEEL,
        WHEEL + ".metadata",
        SDIST,
        QUARANTINED_WHEEL,
        "/simple/demo-pkg/demo_pkg-9.9-py3-none-any.whl",
        f"/simple/pkg-00/{wheel_name('demo-pkg', '1.0')}",
        f"/simple/Demo-Pkg/{wheel_name('demo-pkg', '1.0')}",
    ]
    for target in targets:
        cases += [("GET", target, base), ("HEAD", target, base)]
    for page in PAGES:
        tag = tags[page]
        gzip_tag = tag[:-1] + '-gz"'
        variants: list[list[tuple[str, str]]] = [
            [("Accept", accept)]
            for accept in [
                JSON_V1,
                HTML_V1,
                "text/html",
                PIP_ACCEPT,
                UV_ACCEPT,
                "*/*",
                "application/vnd.pypi.simple.latest+json",
                f"{JSON_V1};q=0, text/html;q=0.5",
                "text/plain",
                "text/html;q=abc",
                "",
            ]
        ]
        variants += [
            [("Accept-Encoding", encoding)]
            for encoding in ["gzip", "gzip;q=0", "br;q=1.0, gzip;q=0.8", "*", "identity"]
        ]
        variants += [
            [("If-None-Match", value)]
            for value in [tag, f"W/{tag}", f'"other", {tag}', '"other"', "*", gzip_tag]
        ]
        variants += [
            [("Accept-Encoding", "gzip"), ("If-None-Match", gzip_tag)],
            [("Accept-Encoding", "gzip"), ("If-None-Match", tag)],
            [("Accept", JSON_V1), ("If-None-Match", tag)],
        ]
        variants += [
            [("If-Modified-Since", value)]
            for value in [
                OWN_LAST_MODIFIED,
                "Sun, 06 Nov 1994 08:49:37 GMT",
                "Fri, 01 Jan 2100 00:00:00 GMT",
                "yesterday",
            ]
        ]
        variants += [
            [("If-None-Match", '"other"'), ("If-Modified-Since", "Fri, 01 Jan 2100 00:00:00 GMT")],
            [("Accept", JSON_V1), ("Accept", "text/html")],  # a header twice
        ]
        cases += [("GET", page, base + variant) for variant in variants]
    tag = tags[WHEEL]
    file_variants: list[list[tuple[str, str]]] = [
        [("Range", value)]
        for value in [
            "bytes=0-9",
            "bytes=-10",
            "bytes=100-",
            "bytes=5-99999999",
            "bytes=99999999-",
            "bytes=99999998-99999999",
            "bytes=0-1,4-5",
            "items=0-1",
            "bytes=9-2",
            "bytes=-0",
        ]
    ]
    file_variants += [
        [("Range", "bytes=0-9"), ("If-Range", tag)],
        [("Range", "bytes=0-9"), ("If-Range", '"other"')],
        [("If-None-Match", tag)],
        [("If-None-Match", f"W/{tag}")],
        [("If-None-Match", '"other"')],
        [("If-Modified-Since", "Fri, 01 Jan 2100 00:00:00 GMT")],
        [("If-Modified-Since", "Sun, 06 Nov 1994 08:49:37 GMT")],
        [("Accept-Encoding", "gzip")],
        [("Range", "bytes=0-9"), ("Range", "bytes=0-9")],
    ]
    for target in [WHEEL, WHEEL + ".metadata"]:
        cases += [("GET", target, base + variant) for variant in file_variants]
        cases += [("HEAD", target, base + variant) for variant in file_variants[:3]]
    return cases


def comparable(answer: Answer, target: str) -> tuple[int, list[tuple[str, str]], bytes]:
    """What must be the same on both servers: all but Date, and but the time a page was
    rendered (its Last-Modified: present or not)."""
    page = not target.split("?")[0].rpartition("/")[2]
    headers = [
        (name, "<page time>" if page and name == "last-modified" else value)
        for name, value in answer.headers
        if name != "date"
    ]
    return answer.status, headers, answer.body


def test_every_page_and_file_request_gets_the_falcon_apps_answer(pair: Pair) -> None:
    tags = etags(pair.falcon, pair.credentials["read secret"])
    fast, falcon = Connection(pair.fast.port), Connection(pair.falcon.port)
    last_modified: dict[tuple[int, str], str] = {}
    for connection in (fast, falcon):  # each server renders each page, and knows the readers
        for name, credential in pair.credentials.items():
            for path in [] if name in REFUSED else PAGES:
                answer = connection.exchange("GET", path, list(credential.items()))
                found = dict(answer.headers).get("last-modified")
                if answer.status == 200 and found:
                    last_modified[(connection.port, path)] = found
    checked = 0
    for name, credential in pair.credentials.items():
        cases = requests_for(credential, tags)
        if name not in EVERY_VARIANT:
            cases = [case for case in cases if case[2] == list(credential.items())]
        if name in REFUSED:
            cases = [case for case in cases if case[:2] in (("GET", "/simple/"), ("GET", WHEEL))]
        for method, target, headers in cases:
            answers = []
            for connection in (fast, falcon):
                sent = [
                    (
                        key,
                        last_modified.get((connection.port, target), "")
                        if value == OWN_LAST_MODIFIED
                        else value,
                    )
                    for key, value in headers
                ]
                answers.append(comparable(connection.exchange(method, target, sent), target))
            assert answers[0] == answers[1], f"{name}: {method} {target} {headers}"
            checked += 1
    fast.close()
    falcon.close()
    assert checked > 500
    for server in (pair.fast, pair.falcon):
        assert "Traceback" not in server.log(), server.log()


def test_a_file_of_several_reads_is_sent_whole_and_in_part_alike(pair: Pair) -> None:
    big = wheel_bytes("big-pkg", "1.0", payload=BIG_PAYLOAD)
    fast, falcon = Connection(pair.fast.port), Connection(pair.falcon.port)
    credential = list(pair.credentials["read secret"].items())
    for ranged, expected in [
        ([], big),
        ([("Range", f"bytes=1000000-{len(big) - 1000}")], big[1000000:-999]),
        ([("Range", "bytes=-1500000")], big[-1500000:]),
    ]:
        answers = [
            comparable(connection.exchange("GET", BIG_WHEEL, credential + ranged), BIG_WHEEL)
            for connection in (fast, falcon)
        ]
        assert answers[0] == answers[1]
        assert answers[0][2] == expected
    fast.close()
    falcon.close()


# --- In process: which requests the fast path takes -----------------------------------------


@dataclass
class Recording:
    """The Falcon app, noting each request it is given."""

    app: ASGIApp
    given: list[str] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.given.append(f"{scope['method']} {scope['path']}")
        await self.app(scope, receive, send)


@dataclass
class InProcess:
    fast: FastPath
    falcon: Recording
    read: dict[str, str]
    write: dict[str, str]

    async def status(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str] | Sequence[tuple[str, str]] = (),
        *,
        query: str = "",
        client: str = "127.0.0.1",
    ) -> tuple[int, bool]:
        """The status of the answer, and whether the fast path gave it."""
        items = headers.items() if isinstance(headers, Mapping) else headers
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": query.encode(),
            "root_path": "",
            "headers": [(b"host", b"127.0.0.1")]
            + [(name.lower().encode(), value.encode()) for name, value in items],
            "client": (client, 50000),
            "server": ("127.0.0.1", 8080),
        }
        statuses: list[int] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Mapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        given = len(self.falcon.given)
        await self.fast(scope, receive, send)
        return statuses[0], len(self.falcon.given) == given


@pytest.fixture
def in_process(tmp_path: Path) -> InProcess:
    spec = ServerSpec(tmp_path / "root", {"local": fs_table("local", anonymous_read=True)})
    settings = ServerSettings(
        root=spec.root,
        config=str(spec.config_path),
        admin_secret=str(spec.admin_path),
        extra_index_url="",
    )
    runtime = Runtime(settings)
    falcon = create_app(settings, runtime)
    read, write = (
        auth("local", spec.secret("local", "read")),
        auth("local", spec.secret("local", "write")),
    )
    client = TestClient(falcon)
    for name in ["demo-pkg", "quiet-pkg"]:
        body = upload_body(
            wheel_name(name, "1.0"), wheel_bytes(name, "1.0"), name=name, version="1.0"
        )
        result = client.simulate_post(
            "/simple/", body=body, headers={**write, "Content-Type": UPLOAD_CONTENT_TYPE}
        )
        assert result.status_code == 200, result.text
    result = client.simulate_post(
        "/_/status/",
        body="project=quiet-pkg&status=quarantined",
        headers={**write, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert result.status_code == 200, result.text
    recording = Recording(falcon)
    return InProcess(FastPath(recording, runtime, None), recording, read, write)


DEMO_WHEEL = f"/simple/demo-pkg/{wheel_name('demo-pkg', '1.0')}"
DEMO_TAG = f'"{sha256_hex(wheel_bytes("demo-pkg", "1.0"))}"'


def test_a_reader_the_worker_knows_gets_pages_and_files_from_the_fast_path(
    in_process: InProcess,
) -> None:
    site = in_process
    read = site.read

    async def run() -> None:
        # A credential is checked by the Falcon app (in the client's turn) the first time.
        assert await site.status("GET", "/simple/", read) == (200, False)
        for method, path, headers, status in [
            ("GET", "/simple/", read, 200),
            ("GET", "/simple/", {**read, "Accept": JSON_V1, "Accept-Encoding": "gzip"}, 200),
            ("GET", "/simple/demo-pkg/", {**read, "Accept": PIP_ACCEPT}, 200),
            ("GET", "/simple/demo-pkg/", {**read, "If-None-Match": "*"}, 304),
            ("GET", "/simple/quiet-pkg/", read, 200),  # quarantined: its page lists no file
            ("GET", DEMO_WHEEL, read, 200),
            ("HEAD", DEMO_WHEEL, read, 200),
            ("GET", DEMO_WHEEL, {**read, "Range": "bytes=0-9"}, 206),
            ("GET", DEMO_WHEEL, {**read, "If-None-Match": DEMO_TAG}, 304),
            ("GET", DEMO_WHEEL + ".metadata", read, 200),
            ("GET", "/simple/demo-pkg/", {"Accept": UV_ACCEPT}, 200),  # an anonymous read
        ]:
            assert await site.status(method, path, headers) == (status, True), (method, path)

    asyncio.run(run())


def test_every_other_request_is_left_to_the_falcon_app(in_process: InProcess) -> None:
    site = in_process
    read = site.read

    async def run() -> None:
        assert await site.status("GET", "/simple/", read) == (200, False)  # not checked yet
        for method, path, headers, status in [
            ("GET", "/simple/", auth("local", "wrong"), 401),
            ("GET", "/simple/", {"Cookie": "private_pypi_session=unknown"}, 200),
            ("GET", "/simple/", [*read.items(), ("Accept", JSON_V1), ("Accept", "text/html")], 200),
            ("GET", "/simple/", {**read, "Accept": "text/plain"}, 406),
            ("HEAD", "/simple/", read, 405),
            ("POST", "/simple/", read, 403),
            ("GET", "/simple", read, 301),
            ("GET", "/simple/Demo_Pkg/", read, 301),
            ("GET", "/simple/no-such-project/", read, 404),
            ("GET", "/simple/-not-valid-/", read, 400),
            ("GET", f"/simple/quiet-pkg/{wheel_name('quiet-pkg', '1.0')}", read, 404),
            ("GET", "/simple/demo-pkg/demo_pkg-9.9-py3-none-any.whl", read, 404),
            ("GET", DEMO_WHEEL, {**read, "Range": "bytes=99999998-99999999"}, 416),
            ("HEAD", DEMO_WHEEL + ".metadata", read, 200),
            ("GET", "/pypi/demo-pkg/json", read, 200),
        ]:
            assert await site.status(method, path, headers) == (status, False), (method, path)
        assert await site.status("GET", "/simple/", read, query="format=json") == (200, False)

    asyncio.run(run())


def test_a_client_being_throttled_waits_its_turn_as_before(in_process: InProcess) -> None:
    site = in_process
    read, wrong = site.read, auth("local", "wrong")

    async def run() -> None:
        assert await site.status("GET", "/simple/", read) == (200, False)
        for _ in range(FREE_FAILURES_PER_CLIENT):
            assert await site.status("GET", "/simple/", wrong) == (401, False)
        held_back = asyncio.create_task(site.status("GET", "/simple/", wrong))
        await asyncio.sleep(FIRST_DELAY_SECONDS / 4)  # its check under way: the client's turn
        assert await site.status("GET", "/simple/", read) == (200, False)
        assert await site.status("GET", "/simple/", read, client="10.0.0.9") == (200, True)
        assert await held_back == (401, False)
        assert await site.status("GET", "/simple/", read) == (200, True)

    asyncio.run(run())
