"""Browser sessions end when what they stand for ends: a logout (in every worker), a rotation of
the repository's secrets (by an admin or by a restart with another config), and a hard maximum
age. Tried with a stolen cookie against a real server."""

from __future__ import annotations

import time
from pathlib import Path

import requests
import tomli_w

from tests.hardening.support import (
    HTTP_TIMEOUT,
    SESSION_COOKIE,
    ServerSpec,
    auth,
    fs_table,
    log_in,
)
from tests.server import RunningServer

CSRF_COOKIE = "private_pypi_login_csrf"


def reads(server: RunningServer, cookie: str) -> int:
    """The status ``/simple/`` answers to the cookie alone."""
    return requests.get(
        server.simple_url, cookies={SESSION_COOKIE: cookie}, timeout=HTTP_TIMEOUT
    ).status_code


def reads_everywhere(server: RunningServer, cookie: str, times: int = 24) -> set[int]:
    """The statuses of ``times`` requests, each on a new connection (spread over workers)."""
    return {reads(server, cookie) for _ in range(times)}


def test_logout_ends_the_session_in_every_worker(tmp_path: Path) -> None:
    spec = ServerSpec(tmp_path / "root", {"local": fs_table("local")}, ("--workers=2",))
    server = spec.start()
    try:
        cookie = log_in(server)
        assert reads_everywhere(server, cookie) == {200}
        logout = requests.post(
            f"{server.url}/logout/",
            cookies={SESSION_COOKIE: cookie},
            allow_redirects=False,
            timeout=HTTP_TIMEOUT,
        )
        assert logout.status_code == 303
        assert reads_everywhere(server, cookie) == {401}, "a copy of the cookie still reads"
    finally:
        server.stop()


def test_a_get_of_logout_shows_a_button_and_ends_nothing(tmp_path: Path) -> None:
    """A link or an image pointing at /logout/ cannot log anyone out."""
    spec = ServerSpec(tmp_path / "root", {"local": fs_table("local")}, ("--workers=1",))
    server = spec.start()
    try:
        cookie = log_in(server)
        page = requests.get(
            f"{server.url}/logout/", cookies={SESSION_COOKIE: cookie}, timeout=HTTP_TIMEOUT
        )
        assert page.status_code == 200
        assert '<form method="post" action="/logout/">' in page.text
        assert reads(server, cookie) == 200
    finally:
        server.stop()


def test_an_admin_rotating_the_secrets_ends_the_sessions(tmp_path: Path) -> None:
    spec = ServerSpec(tmp_path / "root", {"local": fs_table("local")}, ("--workers=2",))
    server = spec.start()
    try:
        cookie = log_in(server)
        assert reads(server, cookie) == 200
        rotated = fs_table("local")
        form = {
            "config": tomli_w.dumps({"local": rotated}),
            "admin_secret": tomli_w.dumps(
                {"local": {"type": "file_system", "raw": rotated["write_secret"]}}
            ),
        }
        admin = auth("local", spec.secret("local", "write"))
        response = requests.post(
            f"{server.url}/initialize/", data=form, headers=admin, timeout=HTTP_TIMEOUT
        )
        assert response.status_code == 200, response.text
        assert reads_everywhere(server, cookie) == {401}
    finally:
        server.stop()


def test_a_restart_with_other_secrets_ends_the_sessions_and_one_with_the_same_keeps_them(
    tmp_path: Path,
) -> None:
    root = tmp_path / "root"
    spec = ServerSpec(root, {"local": fs_table("local")}, ("--workers=1",))
    server = spec.start()
    cookie = log_in(server)
    server.stop()

    same = spec.start()
    try:
        assert reads(same, cookie) == 200, "a restart alone should not log anyone out"
    finally:
        same.stop()

    rotated = ServerSpec(root, {"local": fs_table("local")}, ("--workers=1",)).start()
    try:
        assert reads(rotated, cookie) == 401
    finally:
        rotated.stop()


def test_a_session_ends_at_its_maximum_age_however_it_is_used(tmp_path: Path) -> None:
    root = tmp_path / "root"
    spec = ServerSpec(root, {"local": fs_table("local")}, ("--workers=1",))
    server = spec.start("--session_max_age=3")
    try:
        cookie = log_in(server)
        started = time.monotonic()
        while time.monotonic() - started < 2:
            assert reads(server, cookie) == 200
            time.sleep(0.2)
        time.sleep(max(0.0, 3.5 - (time.monotonic() - started)))
        assert reads(server, cookie) == 401
    finally:
        server.stop()


def test_a_lower_maximum_age_at_restart_ends_older_sessions(tmp_path: Path) -> None:
    root = tmp_path / "root"
    spec = ServerSpec(root, {"local": fs_table("local")}, ("--workers=1",))
    server = spec.start()
    cookie = log_in(server)
    server.stop()
    time.sleep(2.1)
    shorter = spec.start("--session_max_age=2")
    try:
        assert reads(shorter, cookie) == 401
    finally:
        shorter.stop()
