"""Access log lines of a real server, in both formats, after requests that carry every kind of
credential (basic auth secrets, an API token as a password and as a bearer token, a session
cookie) in headers, in the query string and in a Referer: one line per request naming the
repository that answered, and not one secret anywhere in the log."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from private_pypi_core.auth import generate_secret
from tests.hardening.support import (
    HTTP_TIMEOUT,
    ServerSpec,
    auth,
    fs_table,
    log_in,
    raw_get,
    wait_until,
)
from tests.ops.support import bearer, json_lines, start
from tests.server import RunningServer

COMBINED = re.compile(
    r"(?P<client>\S+) - (?P<user>\S+) \[(?P<time>[^]]+)\] "
    r'"(?P<method>\S+) (?P<path>\S+) (?P<protocol>HTTP/[\d.]+)" (?P<status>\d{3}) '
    r'(?P<bytes>\d+|-) "(?P<referer>[^"]*)" "(?P<user_agent>[^"]*)" (?P<micros>\d+)'
)
TIME = re.compile(r"\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}")


@dataclass
class Logged:
    """What one access line says, in either format."""

    user: str
    request: str  # method and path
    status: int
    sent: int


@dataclass
class Exchange:
    """A request a test sent, and what the access log should say of it."""

    request: str
    user: str
    answer: requests.Response


@dataclass
class Site:
    server: RunningServer
    log_format: str


@pytest.fixture(params=["text", "json"])
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Site]:
    spec = ServerSpec(tmp_path / "root", {"local": fs_table("local")})
    server = start(spec, "--accesslog=-", f"--log_format={request.param}", "--debug")
    yield Site(server, request.param)
    server.stop()


def access_lines(site: Site, offset: int) -> list[Logged]:
    """The access lines logged after ``offset``; in JSON, every line must be JSON."""
    log = site.server.log()[offset:]
    if site.log_format == "json":
        return [
            Logged(
                user=str(line["user"]),
                request=f"{line['method']} {line['path']}",
                status=int(str(line["status"])),
                sent=int(str(line["bytes"])),
            )
            for line in json_lines(log)
            if line["logger"] == "gunicorn.access"
        ]
    logged = []
    for line in log.splitlines():
        match = COMBINED.fullmatch(line)
        if match is None:
            continue
        assert TIME.fullmatch(match["time"]), line
        sent = 0 if match["bytes"] == "-" else int(match["bytes"])
        request = f"{match['method']} {match['path']}"
        logged.append(Logged(match["user"], request, int(match["status"]), sent))
    return logged


def logged_parts(site: Site, offset: int) -> list[tuple[str, str, str]]:
    """The path, Referer and User-Agent of each access line logged after ``offset``."""
    log = site.server.log()[offset:]
    if site.log_format == "json":
        return [
            (str(line["path"]), str(line["referer"]), str(line["user_agent"]))
            for line in json_lines(log)
            if line["logger"] == "gunicorn.access"
        ]
    matches = (COMBINED.fullmatch(line) for line in log.splitlines())
    return [(m["path"], m["referer"], m["user_agent"]) for m in matches if m is not None]


def exchange(
    server: RunningServer, method: str, path: str, user: str, **kwargs: object
) -> Exchange:
    answer = requests.request(method, server.url + path, timeout=HTTP_TIMEOUT, **kwargs)  # type: ignore[arg-type]
    return Exchange(f"{method} {path}", user, answer)


def test_one_line_per_request_naming_the_repository_and_no_secret(site: Site) -> None:
    server = site.server
    read, write = server.secret("local", "read"), server.secret("local", "write")
    created = requests.post(
        f"{server.url}/_/tokens/",
        data={"scopes": "read", "note": "ops"},
        headers=auth("local", write),
        timeout=HTTP_TIMEOUT,
    )
    assert created.status_code == 201, created.text
    token = created.json()["token"]
    cookie = log_in(server, "local")
    # Written after the answer: wait, or it would seem to come after the offset.
    assert wait_until(lambda: any(line.request == "POST /login/" for line in access_lines(site, 0)))
    offset = len(server.log())

    sent = [
        exchange(server, "GET", "/simple/", "local", headers=auth("local", read)),
        exchange(server, "GET", "/simple/", "local", headers=auth("__token__", token)),
        exchange(server, "GET", "/simple/", "-", headers=bearer(token)),  # tokens take basic
        exchange(server, "GET", "/simple/", "local", cookies={"private_pypi_session": cookie}),
        exchange(server, "GET", "/simple/", "-", headers=auth("local", read + "x")),
        exchange(server, "GET", "/simple/", "-", headers=auth(read, write)),  # secrets swapped
        exchange(
            server, "GET", "/healthz", "-", headers={"Referer": f"{server.url}/?token={token}"}
        ),
    ]
    masked = exchange(
        server,
        "GET",
        f"/simple/?q=widget&token={token}&password={read}&Secret={write}&session={cookie}",
        "local",
        headers=auth("local", read),
    )
    masked.request = (
        "GET /simple/?q=widget&token=REDACTED&password=REDACTED&Secret=REDACTED&session=REDACTED"
    )
    sent.append(masked)
    expected = [
        Logged(
            one.user, one.request, one.answer.status_code, int(one.answer.headers["Content-Length"])
        )
        for one in sent
    ]
    assert wait_until(lambda: len(access_lines(site, offset)) >= len(expected)), server.log()
    assert access_lines(site, offset) == expected

    log = server.log()
    for name, secret in {"read": read, "write": write, "token": token, "cookie": cookie}.items():
        assert secret not in log, f"the {name} secret is in the log"


def test_a_secret_put_by_mistake_in_a_path_query_referer_or_user_agent_is_masked(
    site: Site,
) -> None:
    server = site.server
    created = requests.post(
        f"{server.url}/_/tokens/",
        data={"scopes": "read"},
        headers=auth("local", server.secret("local", "write")),
        timeout=HTTP_TIMEOUT,
    )
    assert created.status_code == 201, created.text
    token = created.json()["token"]
    without_prefix = token.removeprefix("pypp_")
    generated = generate_secret()  # what init_pkg_repo and the embedded default make
    chosen = {  # values of parameters named like a credential: no shape tells them
        name: f"{name}{secrets.token_hex(4)}"
        for name in ("password", "pass", "pw", "passphrase", "pin", "jwt", "sig", "bearer")
    }
    named = "&".join(f"{name}={value}" for name, value in chosen.items())
    ordinary = ("-", "pip/24.0")
    # What is sent (target, Referer, User-Agent), and what the line says of it.
    sent = {
        (f"/simple/{generated}/", *ordinary): ("/simple/REDACTED/", *ordinary),
        (f"/{token}", *ordinary): ("/REDACTED", *ordinary),
        (f"/simple/%70ypp_{without_prefix}/", *ordinary): ("/simple/REDACTED/", *ordinary),
        (f"/simple/local:{generated}@x/", *ordinary): ("/simple/REDACTED/", *ordinary),
        ("/simple/?q=widget&page=2", *ordinary): ("/simple/?q=widget&page=2", *ordinary),
        (f"/simple/?x=1;password={generated}&{named}&x={without_prefix}", *ordinary): (
            "/simple/?x=1;password=REDACTED&"
            + "&".join(f"{name}=REDACTED" for name in chosen)
            + "&x=REDACTED",
            *ordinary,
        ),
        ("/healthz", f"local:{generated}@evil.example/p", "pip/24.0"): (
            "/healthz",
            "REDACTED",
            "pip/24.0",
        ),
        ("/healthz", f"http:local:{generated}@evil", "pip/24.0"): (
            "/healthz",
            "REDACTED",
            "pip/24.0",
        ),
        ("/healthz", f"https://ci.example:8443/job/x:{generated}?a=b", "pip/24.0"): (
            "/healthz",
            "https://ci.example:8443",
            "pip/24.0",
        ),
        ("/healthz", "-", f"pip/1 token={generated} {without_prefix}"): (
            "/healthz",
            "-",
            "pip/1 token=REDACTED REDACTED",
        ),
    }
    assert wait_until(lambda: any(part[0] == "/_/tokens/" for part in logged_parts(site, 0)))
    offset = len(server.log())
    for target, referer, user_agent in sent:
        headers = {"User-Agent": user_agent} | ({"Referer": referer} if referer != "-" else {})
        assert raw_get(server.port, target, headers) is not None, target
    assert wait_until(lambda: len(logged_parts(site, offset)) >= len(sent)), server.log()
    # Each worker writes its own lines: in the order of the requests only within a worker.
    assert sorted(logged_parts(site, offset)) == sorted(sent.values())

    log = server.log()
    for secret in (generated, token, without_prefix, *chosen.values()):
        assert secret not in log, f"{secret} is in the log"
