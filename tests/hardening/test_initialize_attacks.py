"""``POST /initialize/`` on a pristine server, tried by someone who reached it first: a config
may not reach outside ROOT, and repository names are slugs wherever they enter."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import tomli_w

from tests.hardening.support import (
    HTTP_TIMEOUT,
    ServerSpec,
    assert_same_snapshot,
    auth,
    fs_table,
    read_auth,
    snapshot,
    storage_dir,
    upload,
    wheel_bytes,
    wheel_name,
)
from tests.server import RunningServer, start_server

PRIVATE_PYPI = Path(sys.executable).parent / "private_pypi"
BAD_NAMES = ["../../x", "..", ".", "a/b", "-rf", "x" * 65, "a..b", "名前", ""]


@pytest.fixture
def victim(tmp_path: Path) -> Iterator[RunningServer]:
    """Another server (its own ROOT) holding a private wheel in repository ``other``."""
    spec = ServerSpec(tmp_path / "victim", {"other": fs_table("other")}, ("--workers=1",))
    running = spec.start()
    data = wheel_bytes("private-pkg", "1.0")
    response = upload(
        running,
        wheel_name("private-pkg", "1.0"),
        data,
        name="private-pkg",
        version="1.0",
        repository="other",
    )
    assert response.status_code == 200, response.text
    yield running
    running.stop()


@pytest.fixture
def pristine(tmp_path: Path) -> Iterator[RunningServer]:
    running = start_server(tmp_path / "pristine", "--extra_index_url=", "--workers=2")
    yield running
    running.stop()


def post_config(
    server: RunningServer,
    config: dict[str, dict[str, object]],
    admin: dict[str, dict[str, object]] | None = None,
    headers: dict[str, str] | None = None,
) -> requests.Response:
    if admin is None:
        admin = {
            name: {"type": table["type"], "raw": "attacker-write"} for name, table in config.items()
        }
    form = {"config": tomli_w.dumps(config), "admin_secret": tomli_w.dumps(admin)}
    return requests.post(
        f"{server.url}/initialize/", data=form, headers=headers or {}, timeout=HTTP_TIMEOUT
    )


def attacker_table(**extra: object) -> dict[str, object]:
    return {
        "type": "file_system",
        "read_secret": "attacker-read",
        "write_secret": "attacker-write",
        **extra,
    }


def still_pristine(server: RunningServer) -> bool:
    return (
        not (server.root / "initialized").exists()
        and requests.get(server.simple_url, headers=read_auth(server), timeout=HTTP_TIMEOUT).ok
    )


def test_anonymous_config_pointing_at_another_servers_storage_is_refused(
    pristine: RunningServer, victim: RunningServer
) -> None:
    before = snapshot(victim, "other")
    config = {"loot": attacker_table(storage_path=str(storage_dir(victim.root, "other")))}
    response = post_config(pristine, config)
    assert response.status_code == 403, response.text
    assert "'storage_path' needs an admin credential" in response.text
    assert still_pristine(pristine)
    loot = requests.get(
        pristine.simple_url, headers=auth("loot", "attacker-read"), timeout=HTTP_TIMEOUT
    )
    assert loot.status_code == 401
    assert_same_snapshot(before, snapshot(victim, "other"))


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"type": "s3", "bucket": "the-operators-bucket", "read_secret": "r"}, "bucket"),
        (
            {"type": "s3", "bucket": "b", "endpoint_url": "http://169.254.169.254/"},
            "bucket",
        ),
        (
            {"type": "github", "owner": "o", "repo": "r", "api_url": "http://127.0.0.1:9/"},
            "api_url",
        ),
        ({"type": "github", "owner": "o", "repo": "r", "token_env": "HOME"}, "token_env"),
    ],
    ids=["s3-bucket", "s3-endpoint", "github-api-url", "github-token-env"],
)
def test_anonymous_config_may_not_choose_an_address_or_a_variable(
    pristine: RunningServer, table: dict[str, object], key: str
) -> None:
    response = post_config(pristine, {"team": table})
    assert response.status_code == 403, response.text
    assert f"{key!r} needs an admin credential" in response.text
    assert still_pristine(pristine)


def test_anonymous_admin_secret_may_not_read_the_servers_environment(
    pristine: RunningServer,
) -> None:
    admin = {"team": {"type": "file_system", "env": "HOME"}}
    response = post_config(pristine, {"team": attacker_table()}, admin)
    assert response.status_code == 403, response.text
    assert "'env' needs an admin credential" in response.text
    assert still_pristine(pristine)


@pytest.mark.parametrize("name", BAD_NAMES)
def test_posted_repository_names_that_are_not_slugs_are_refused_and_create_nothing(
    pristine: RunningServer, tmp_path: Path, name: str
) -> None:
    outside_before = sorted(p.name for p in tmp_path.iterdir())
    cache_before = sorted(p.name for p in (pristine.root / "cache").iterdir())
    response = post_config(pristine, {name: attacker_table()})
    assert response.status_code == 400, response.text
    assert "invalid package repository name" in response.text
    assert sorted(p.name for p in tmp_path.iterdir()) == outside_before
    assert sorted(p.name for p in (pristine.root / "cache").iterdir()) == cache_before
    assert still_pristine(pristine)


def test_anonymous_config_under_root_is_still_taken(pristine: RunningServer) -> None:
    """The CI recipe keeps working: a config that chooses no path, stored under ROOT."""
    response = post_config(pristine, {"ci": attacker_table()})
    assert response.status_code == 200, response.text
    data = wheel_bytes("demo-pkg", "1.0")
    pristine.repositories = {"ci": {"write_secret": "attacker-write"}}
    stored = upload(
        pristine,
        wheel_name("demo-pkg", "1.0"),
        data,
        name="demo-pkg",
        version="1.0",
        repository="ci",
    )
    assert stored.status_code == 200, stored.text
    assert (storage_dir(pristine.root, "ci") / "demo-pkg" / wheel_name("demo-pkg", "1.0")).is_file()


def test_an_admin_may_choose_a_storage_path(tmp_path: Path) -> None:
    spec = ServerSpec(tmp_path / "root", {"local": fs_table("local")}, ("--workers=1",))
    server = spec.start()
    try:
        elsewhere = tmp_path / "elsewhere"
        config = {"local": fs_table("local", storage_path=str(elsewhere))}
        admin = {"local": {"type": "file_system", "raw": str(config["local"]["write_secret"])}}
        response = post_config(server, config, admin, auth("local", spec.secret("local", "write")))
        assert response.status_code == 200, response.text
        assert elsewhere.is_dir()
    finally:
        server.stop()


def test_a_repository_left_under_root_by_an_earlier_config_cannot_be_claimed(
    tmp_path: Path,
) -> None:
    """ROOT once served ``team`` from a config file; restarted on the embedded default it is
    not pristine: an anonymous config naming ``team`` would open team's packages."""
    root = tmp_path / "root"
    spec = ServerSpec(root, {"team": fs_table("team")}, ("--workers=1",))
    server = spec.start()
    data = wheel_bytes("team-pkg", "1.0")
    try:
        response = upload(
            server,
            wheel_name("team-pkg", "1.0"),
            data,
            name="team-pkg",
            version="1.0",
            repository="team",
        )
        assert response.status_code == 200, response.text
    finally:
        server.stop()
    embedded = start_server(root, "--extra_index_url=", "--workers=1")
    try:
        response = post_config(embedded, {"team": attacker_table()})
        assert response.status_code == 401, response.text
        listing = requests.get(
            embedded.simple_url, headers=auth("team", "attacker-read"), timeout=HTTP_TIMEOUT
        )
        assert listing.status_code == 401
    finally:
        embedded.stop()
    stored = storage_dir(root, "team") / "team-pkg" / wheel_name("team-pkg", "1.0")
    assert stored.read_bytes() == data


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PRIVATE_PYPI_COMMAND")}
    return subprocess.run(
        [str(PRIVATE_PYPI), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=environ,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    "command",
    [
        ["update_index", "file_system", "../../x", "--secret", "s", "--root", "root"],
        ["fs.init_pkg_repo", "--name", "../../x", "--config", "c.toml", "--admin_secret", "a.toml"],
        ["yank", "demo", "1.0", "--repository", "../../x", "--secret", "s"],
        ["github.init_pkg_repo", "--name", "../x", "--owner", "o", "--repo", "r", "--token", "t"],
        ["server", "root", "--config", "bad.toml", "--port=1"],
    ],
    ids=["update_index", "fs.init_pkg_repo", "yank", "github.init_pkg_repo", "config-file"],
)
def test_cli_refuses_repository_names_that_are_not_slugs(
    tmp_path: Path, command: list[str]
) -> None:
    (tmp_path / "bad.toml").write_text(tomli_w.dumps({"../../x": attacker_table()}))
    (tmp_path / "root").mkdir()
    before = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    result = run_cli(*command, cwd=tmp_path)
    assert result.returncode == 2, result
    assert "invalid package repository name '../" in result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == before
    assert not (tmp_path.parent / "x").exists()
