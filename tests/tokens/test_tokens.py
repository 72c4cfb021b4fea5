"""Scoped, expiring API tokens against real servers, with the real ``private_pypi token``
command, twine, uv and pip: what each scope and project glob allows, revocation and expiry in
force at once (no cache keeps a token alive) and on another server within one sync interval,
and the audit trail of who did what."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import tomli_w

from tests.dists import make_wheel
from tests.e2e.clients import client_env, pip_install, report, twine_upload, uv_publish
from tests.hardening.support import (
    HTTP_TIMEOUT,
    ServerSpec,
    auth,
    fs_table,
    post_upload,
    upload_body,
    wait_until,
    wheel_bytes,
    wheel_name,
)
from tests.server import RunningServer, start_server

PRIVATE_PYPI = Path(sys.executable).parent / "private_pypi"


def cli(*args: str, root: Path | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PRIVATE_PYPI_COMMAND")}
    return subprocess.run(
        [str(PRIVATE_PYPI), *args],
        capture_output=True,
        text=True,
        env=environ,
        cwd=root,
        timeout=60,
        check=False,
    )


def create_token(server: RunningServer, *flags: str) -> str:
    result = cli(
        "token",
        "create",
        "--url",
        server.url,
        "--repository",
        "local",
        "--secret",
        server.secret("local", "write"),
        *flags,
    )
    assert result.returncode == 0, result
    return result.stdout.strip()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    spec = ServerSpec(
        tmp_path_factory.mktemp("tokens") / "root",
        {"local": fs_table("local")},
        ("--workers=2",),
    )
    running = spec.start()
    yield running
    running.stop()


def as_token(token: str) -> tuple[str, str]:
    return ("__token__", token)


def upload_with_twine(
    server: RunningServer, tmp_path: Path, token: str, project: str
) -> subprocess.CompletedProcess[str]:
    wheel = make_wheel(tmp_path / "dist", project, "1.0")
    return twine_upload(server, [wheel], token, client_env(tmp_path), username="__token__")


def test_an_upload_token_uploads_its_projects_only(server: RunningServer, tmp_path: Path) -> None:
    token = create_token(server, "--scope", "upload", "--project", "acme-*", "--note", "CI")
    assert token.startswith("pypp_")
    mine = upload_with_twine(server, tmp_path, token, "acme-widgets")
    assert mine.returncode == 0, report(mine)
    other = upload_with_twine(server, tmp_path, token, "other-pkg")
    assert other.returncode != 0 and "403" in other.stdout
    body = upload_body(
        wheel_name("other-pkg", "2.0"),
        wheel_bytes("other-pkg", "2.0"),
        name="other-pkg",
        version="2.0",
    )
    refused = post_upload(server, body, auth("__token__", token))
    assert refused.status_code == 403
    assert "may upload only projects matching acme-*, not 'other-pkg'" in refused.text
    reading = requests.get(server.simple_url, auth=as_token(token), timeout=HTTP_TIMEOUT)
    assert reading.status_code == 403
    assert "token" in reading.text and "may not read" in reading.text


def test_uv_publishes_with_a_token(server: RunningServer, tmp_path: Path) -> None:
    token = create_token(server, "--scope", "upload")
    wheel = make_wheel(tmp_path / "dist", "uv-token-pkg", "1.0")
    env = client_env(tmp_path)
    result = uv_publish(server, [wheel], token, env, username="__token__")
    assert result.returncode == 0, report(result)


def test_a_read_token_installs_and_may_not_upload_or_yank(
    server: RunningServer, tmp_path: Path
) -> None:
    writer = create_token(server, "--scope", "upload")
    assert upload_with_twine(server, tmp_path, writer, "readable-pkg").returncode == 0
    reader = create_token(server, "--scope", "read")
    index_url = f"http://__token__:{reader}@127.0.0.1:{server.port}/simple/"
    installed = pip_install(tmp_path / "target", index_url, client_env(tmp_path), "readable-pkg")
    assert installed.returncode == 0, report(installed)
    refused = upload_with_twine(server, tmp_path, reader, "readable-pkg2")
    assert "403" in refused.stdout + refused.stderr
    yank = requests.post(
        f"{server.url}/yank/",
        data={"project": "readable-pkg", "target": "1.0"},
        auth=as_token(reader),
        timeout=HTTP_TIMEOUT,
    )
    assert yank.status_code == 403 and "may not yank" in yank.text


def test_a_token_cannot_make_tokens(server: RunningServer) -> None:
    token = create_token(server, "--scope", "read", "--scope", "upload", "--scope", "yank")
    made = requests.post(
        f"{server.url}/_/tokens/", data={"scopes": "upload"}, auth=as_token(token), timeout=10
    )
    assert made.status_code == 403, made.text


def test_listing_shows_tokens_but_never_their_secrets(server: RunningServer) -> None:
    token = create_token(server, "--scope", "read", "--note", "laptop of alice")
    result = cli(
        "token",
        "list",
        "--url",
        server.url,
        "--repository",
        "local",
        "--secret",
        server.secret("local", "write"),
    )
    assert result.returncode == 0, result
    token_id = token.split("_")[1]
    line = next(line for line in result.stdout.splitlines() if line.startswith(token_id))
    assert "scopes=read" in line and "note='laptop of alice'" in line
    assert token.split("_", 2)[2] not in result.stdout
    assert "sha256" not in result.stdout


def test_a_revoked_token_is_refused_at_once_by_every_worker(server: RunningServer) -> None:
    token = create_token(server, "--scope", "read")
    assert requests.get(server.simple_url, auth=as_token(token), timeout=10).ok
    token_id = token.split("_")[1]
    revoked = cli(
        "token",
        "revoke",
        token_id,
        "--url",
        server.url,
        "--repository",
        "local",
        "--secret",
        server.secret("local", "write"),
    )
    assert revoked.returncode == 0, revoked
    statuses = {
        requests.get(server.simple_url, auth=as_token(token), timeout=10).status_code
        for _ in range(20)
    }
    assert statuses == {401}


def test_an_expired_token_is_refused(server: RunningServer) -> None:
    token = create_token(server, "--scope", "read", "--expires", "3s")
    assert requests.get(server.simple_url, auth=as_token(token), timeout=10).ok
    time.sleep(3.5)
    assert requests.get(server.simple_url, auth=as_token(token), timeout=10).status_code == 401


def test_a_wrong_or_made_up_token_gets_the_answer_of_a_wrong_secret(server: RunningServer) -> None:
    token = create_token(server, "--scope", "read")
    wrong_secret = token[:-1] + ("A" if token[-1] != "A" else "B")
    made_up = "pypp_000000000000_" + "A" * 43
    answers = {
        requests.get(server.simple_url, auth=as_token(guess), timeout=10).text
        for guess in (wrong_secret, made_up, "garbage")
    }
    assert answers == {"Wrong package repository name or secret.\n"}


def test_a_revocation_reaches_another_server_on_the_store_within_a_sync(tmp_path: Path) -> None:
    table = fs_table("local", storage_path=str(tmp_path / "shared"), sync_index_interval=1)
    first = ServerSpec(tmp_path / "first", {"local": table}).start()
    second = ServerSpec(tmp_path / "second", {"local": table}).start()
    try:
        token = create_token(first, "--scope", "read")
        assert wait_until(
            lambda: requests.get(second.simple_url, auth=as_token(token), timeout=10).ok,
            timeout=10,
        ), "the other server never honoured the token"
        token_id = token.split("_")[1]
        revoked = requests.post(
            f"{first.url}/_/tokens/revoke/",
            data={"id": token_id},
            auth=("local", first.secret("local", "write")),
            timeout=10,
        )
        assert revoked.ok, revoked.text
        assert wait_until(
            lambda: (
                requests.get(second.simple_url, auth=as_token(token), timeout=10).status_code == 401
            ),
            timeout=5,
        ), "the other server still honours a revoked token"
    finally:
        first.stop()
        second.stop()


def test_the_audit_trail_names_who_did_what_and_never_a_secret(
    server: RunningServer, tmp_path: Path
) -> None:
    token = create_token(server, "--scope", "upload", "--scope", "yank", "--note", "release CI")
    assert upload_with_twine(server, tmp_path, token, "audited-pkg").returncode == 0
    yank = requests.post(
        f"{server.url}/yank/",
        data={"project": "audited-pkg", "target": "1.0", "reason": "oops"},
        auth=as_token(token),
        timeout=10,
    )
    assert yank.ok, yank.text
    shown = cli(
        "audit", "--repository", "local", "--root", str(server.root), "--project", "audited-pkg"
    )
    assert shown.returncode == 0, shown
    lines = shown.stdout.splitlines()
    token_id = token.split("_")[1]
    assert len(lines) == 2, shown.stdout
    assert lines[0].split()[1:3] == ["upload", "audited-pkg"]
    assert f"by token {token_id} (release CI) from 127.0.0.1" in lines[0]
    assert "yank audited-pkg" in lines[1] and "(oops)" in lines[1]
    events = [
        json.loads(line)
        for line in cli(
            "audit", "--repository", "local", "--root", str(server.root), "--json"
        ).stdout.splitlines()
    ]
    assert {"create token", "upload", "yank"} <= {event["action"] for event in events}
    trail = (server.root / "audit" / "local.jsonl").read_text()
    assert token not in trail and token.split("_", 2)[2] not in trail
    assert server.secret("local", "write") not in trail
    assert (server.root / "audit" / "local.jsonl").stat().st_mode & 0o777 == 0o600


def test_anonymous_read_installs_without_credentials_but_uploads_need_one(
    tmp_path: Path,
) -> None:
    table = fs_table("public", anonymous_read=True)
    folder = tmp_path / "settings"
    folder.mkdir()
    (folder / "config.toml").write_text(tomli_w.dumps({"public": table}))
    server = start_server(
        tmp_path / "root", "--extra_index_url=", "--config", str(folder / "config.toml")
    )
    server.repositories = {"public": {"write_secret": str(table["write_secret"])}}
    try:
        wheel = make_wheel(tmp_path / "dist", "open-pkg", "1.0")
        env = client_env(tmp_path)
        anonymous = twine_upload(server, [wheel], "", env, username="")
        assert anonymous.returncode != 0
        uploaded = twine_upload(server, [wheel], str(table["write_secret"]), env, username="public")
        assert uploaded.returncode == 0, report(uploaded)
        installed = pip_install(tmp_path / "target", server.simple_url, env, "open-pkg")
        assert installed.returncode == 0, report(installed)
    finally:
        server.stop()
