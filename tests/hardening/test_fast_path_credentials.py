"""A credential the fast path (``web.fast_path``) knows stops working the moment it stops
opening the repository, on every worker: a secret rotated by ``/initialize/``, an API token
revoked, an API token expired."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import tomli_w

from tests.core.helpers import TrackedServer
from tests.hardening.support import HTTP_TIMEOUT, ServerSpec, auth, fs_table


@pytest.fixture
def spec(tmp_path: Path) -> ServerSpec:
    return ServerSpec(tmp_path / "root", {"local": fs_table("local")})


@pytest.fixture
def server(spec: ServerSpec) -> Iterator[TrackedServer]:
    tracked = spec.start_tracked("--workers=2")
    yield tracked
    tracked.stop()


def known_everywhere(server: TrackedServer, headers: dict[str, str]) -> None:
    """Every worker has let ``headers``' credential in, and answers it from the fast path."""
    for _ in range(2):
        assert server.statuses_everywhere("/simple/", headers) == {200}


def new_token(server: TrackedServer, write: dict[str, str], expires: str) -> tuple[str, str]:
    response = requests.post(
        f"{server.url}/_/tokens/",
        data={"scopes": "read", "expires": expires},
        headers=write,
        timeout=HTTP_TIMEOUT,
    )
    assert response.status_code == 201, response.text
    return response.json()["token"], response.json()["id"]


def test_a_rotated_secret_stops_working_at_once(spec: ServerSpec, server: TrackedServer) -> None:
    old = auth("local", spec.secret("local", "read"))
    known_everywhere(server, old)
    rotated = fs_table("local")
    response = requests.post(
        f"{server.url}/initialize/",
        data={
            "config": tomli_w.dumps({"local": rotated}),
            "admin_secret": tomli_w.dumps(
                {"local": {"type": "file_system", "raw": rotated["write_secret"]}}
            ),
        },
        headers=auth("local", spec.secret("local", "write")),
        timeout=HTTP_TIMEOUT,
    )
    assert response.status_code == 200, response.text
    assert server.statuses_everywhere("/simple/", old) == {401}
    assert server.statuses_everywhere("/simple/", auth("local", str(rotated["read_secret"]))) == {
        200
    }


def test_a_revoked_token_stops_working_at_once(spec: ServerSpec, server: TrackedServer) -> None:
    write = auth("local", spec.secret("local", "write"))
    token, token_id = new_token(server, write, "90d")
    known_everywhere(server, auth("__token__", token))
    response = requests.post(
        f"{server.url}/_/tokens/revoke/", data={"id": token_id}, headers=write, timeout=HTTP_TIMEOUT
    )
    assert response.status_code == 200, response.text
    assert server.statuses_everywhere("/simple/", auth("__token__", token)) == {401}


def test_an_expired_token_stops_working_at_once(spec: ServerSpec, server: TrackedServer) -> None:
    token, _ = new_token(server, auth("local", spec.secret("local", "write")), "6s")
    expires = time.monotonic() + 6
    known_everywhere(server, auth("__token__", token))
    time.sleep(max(0.0, expires - time.monotonic()) + 0.1)
    assert server.statuses_everywhere("/simple/", auth("__token__", token)) == {401}
