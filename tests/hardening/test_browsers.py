"""What a hostile web page or a forged header can make a server do: cross-site POSTs refused
(packaging tools still upload), no URL built from the Host header, pages neither sniffed nor
framed, stored files private to the server's user, and names too long for the file system
refused up front."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.hardening.support import (
    HTTP_TIMEOUT,
    ServerSpec,
    fs_table,
    listing,
    post_upload,
    read_auth,
    storage_dir,
    upload,
    upload_body,
    wheel_bytes,
    wheel_name,
    write_auth,
)
from tests.server import RunningServer, start_server

CROSS_SITE = [
    {"Origin": "https://evil.example"},
    {"Origin": "null"},
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"},
    {"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"},
]
CROSS_SITE_IDS = ["origin", "null-origin", "fetch-cross-site", "fetch-same-site", "both"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    spec = ServerSpec(
        tmp_path_factory.mktemp("browsers") / "root", {"local": fs_table("local")}, ("--workers=1",)
    )
    running = spec.start()
    data = wheel_bytes("demo-pkg", "1.0")
    response = upload(running, wheel_name("demo-pkg", "1.0"), data, name="demo-pkg", version="1.0")
    assert response.status_code == 200, response.text
    yield running
    running.stop()


def yanked(server: RunningServer) -> bool:
    page = requests.get(
        f"{server.simple_url}demo-pkg/",
        headers={**read_auth(server), "Accept": "application/vnd.pypi.simple.v1+json"},
        timeout=HTTP_TIMEOUT,
    )
    return bool(page.json()["files"][0]["yanked"])


# --- Cross-site requests ------------------------------------------------------------------------


@pytest.mark.parametrize("headers", CROSS_SITE, ids=CROSS_SITE_IDS)
def test_a_cross_site_yank_with_the_write_secret_is_refused(
    server: RunningServer, headers: dict[str, str]
) -> None:
    """A page on another site makes the browser POST with credentials it has cached."""
    response = requests.post(
        f"{server.url}/yank/",
        data={"project": "demo-pkg", "target": "1.0"},
        headers={**write_auth(server), **headers},
        timeout=HTTP_TIMEOUT,
    )
    assert response.status_code == 403, response.text
    assert "another site" in response.text
    assert not yanked(server)


@pytest.mark.parametrize("headers", CROSS_SITE, ids=CROSS_SITE_IDS)
def test_a_cross_site_upload_is_refused_and_stores_nothing(
    server: RunningServer, headers: dict[str, str]
) -> None:
    before = listing(server)
    data = wheel_bytes("evil-pkg", "1.0")
    body = upload_body(wheel_name("evil-pkg", "1.0"), data, name="evil-pkg", version="1.0")
    response = post_upload(server, body, {**write_auth(server), **headers})
    assert response.status_code == 403, response.text
    assert listing(server) == before


@pytest.mark.parametrize("headers", CROSS_SITE, ids=CROSS_SITE_IDS)
def test_a_cross_site_login_and_logout_are_refused(
    server: RunningServer, headers: dict[str, str]
) -> None:
    for path in ("/login/", "/logout/"):
        response = requests.post(
            f"{server.url}{path}", data={"repository": "local"}, headers=headers, timeout=10
        )
        assert response.status_code == 403, (path, response.text)


def test_a_cross_site_initialize_of_a_pristine_server_is_refused(tmp_path: Path) -> None:
    pristine = start_server(tmp_path / "root", "--extra_index_url=", "--workers=1")
    try:
        form = {
            "config": '[x]\ntype = "file_system"\nread_secret = "r"\nwrite_secret = "w"\n',
            "admin_secret": '[x]\ntype = "file_system"\nraw = "w"\n',
        }
        response = requests.post(
            f"{pristine.url}/initialize/",
            data=form,
            headers={"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
            timeout=HTTP_TIMEOUT,
        )
        assert response.status_code == 403, response.text
        assert not (pristine.root / "initialized").exists()
    finally:
        pristine.stop()


def test_the_servers_own_pages_and_packaging_tools_may_post(server: RunningServer) -> None:
    same_origin = {"Origin": server.url, "Sec-Fetch-Site": "same-origin"}
    for headers in (same_origin, {"Origin": server.url}, {}):
        response = requests.post(
            f"{server.url}/unyank/",
            data={"project": "demo-pkg", "target": "1.0"},
            headers={**write_auth(server), **headers},
            timeout=HTTP_TIMEOUT,
        )
        assert response.status_code == 200, (headers, response.text)


# --- The Host header ----------------------------------------------------------------------------


def test_the_json_api_builds_no_url_from_the_host_header(server: RunningServer) -> None:
    response = requests.get(
        f"{server.url}/pypi/demo-pkg/json",
        headers={**read_auth(server), "Host": "evil.example"},
        timeout=HTTP_TIMEOUT,
    )
    assert response.status_code == 200, response.text
    assert "evil.example" not in response.text
    document = response.json()
    assert document["urls"][0]["url"] == "/simple/demo-pkg/demo_pkg-1.0-py3-none-any.whl"
    assert document["info"]["project_url"] == "/pypi/demo-pkg/"


def test_the_json_api_uses_the_public_url_the_operator_gave(tmp_path: Path) -> None:
    spec = ServerSpec(tmp_path / "root", {"local": fs_table("local")}, ("--workers=1",))
    server = spec.start("--url=https://pypi.example.com/")
    try:
        data = wheel_bytes("demo-pkg", "1.0")
        assert upload(
            server, wheel_name("demo-pkg", "1.0"), data, name="demo-pkg", version="1.0"
        ).ok
        response = requests.get(
            f"{server.url}/pypi/demo-pkg/json",
            headers={**read_auth(server), "Host": "evil.example"},
            timeout=HTTP_TIMEOUT,
        )
        url = response.json()["urls"][0]["url"]
        assert url == "https://pypi.example.com/simple/demo-pkg/demo_pkg-1.0-py3-none-any.whl"
    finally:
        server.stop()


# --- Headers and file modes ---------------------------------------------------------------------


def test_every_answer_forbids_sniffing_and_framing(server: RunningServer) -> None:
    answers = {
        "login page": requests.get(f"{server.url}/login/", timeout=10),
        "simple page": requests.get(server.simple_url, headers=read_auth(server), timeout=10),
        "file": requests.get(
            f"{server.simple_url}demo-pkg/{wheel_name('demo-pkg', '1.0')}",
            headers=read_auth(server),
            timeout=10,
        ),
        "401": requests.get(server.simple_url, timeout=10),
        "404": requests.get(f"{server.url}/nowhere", timeout=10),
        "403": requests.post(
            f"{server.url}/yank/", headers={"Origin": "https://evil.example"}, timeout=10
        ),
    }
    for what, response in answers.items():
        assert response.headers.get("X-Content-Type-Options") == "nosniff", what
        assert response.headers.get("X-Frame-Options") == "DENY", what
        assert "frame-ancestors 'none'" in response.headers.get("Content-Security-Policy", ""), what


def test_stored_files_metadata_and_folders_are_private_to_the_server(
    server: RunningServer,
) -> None:
    storage = storage_dir(server.root)
    project = storage / "demo-pkg"
    wheel = project / wheel_name("demo-pkg", "1.0")
    metadata = project / f"{wheel.name}.metadata"
    assert metadata.is_file()
    for path, mode in [
        (wheel, 0o600),
        (metadata, 0o600),
        (storage / "index.json", 0o600),
        (project, 0o700),
        (storage, 0o700),
        (server.root / "cache" / "local", 0o700),
        (server.root / "cache" / "local" / "index.json", 0o600),
    ]:
        assert stat.S_IMODE(path.stat().st_mode) == mode, (path, oct(path.stat().st_mode))


# --- Names too long for the file system -------------------------------------------------------


def test_a_project_name_too_long_for_the_file_system_is_refused_up_front(
    server: RunningServer,
) -> None:
    name = "a" * 250
    data = wheel_bytes(name, "1.0")
    before = sorted(p.name for p in storage_dir(server.root).iterdir())
    body = upload_body(wheel_name(name, "1.0"), data, name=name, version="1.0")
    response = post_upload(server, body, write_auth(server))
    assert response.status_code == 400, response.text
    assert "longer than 200 characters" in response.text
    assert response.headers.get("Retry-After") is None
    assert sorted(p.name for p in storage_dir(server.root).iterdir()) == before
    page = requests.get(f"{server.simple_url}{name}/", headers=read_auth(server), timeout=10)
    assert page.status_code == 400, page.text
