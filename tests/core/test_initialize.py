"""``POST /initialize/`` against a real server with two workers."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.core.helpers import TrackedServer, basic_auth, start_tracked_server
from tests.dists import make_wheel


def repository(name: str) -> tuple[str, str]:
    """The config and admin secret TOML of a file-system repository with known secrets."""
    config = (
        f'[{name}]\ntype = "file_system"\n'
        f'read_secret = "{name}-read"\nwrite_secret = "{name}-write"\n'
    )
    admin = f'[{name}]\ntype = "file_system"\nraw = "{name}-write"\n'
    return config, admin


def read(name: str) -> dict[str, str]:
    return basic_auth(name, f"{name}-read")


def admin(name: str) -> dict[str, str]:
    return basic_auth(name, f"{name}-write")


def initialize(
    server: TrackedServer, config: str, admin_secret: str, headers: dict[str, str] | None = None
) -> requests.Response:
    return requests.post(
        f"{server.url}/initialize/",
        data={"config": config, "admin_secret": admin_secret},
        headers=headers,
        timeout=10,
    )


def embedded_read(server: TrackedServer) -> dict[str, str]:
    config = tomllib.loads((server.server.root / "embedded" / "config.toml").read_text())
    return basic_auth("local", config["local"]["read_secret"])


@pytest.fixture
def pristine(tmp_path: Path) -> Iterator[TrackedServer]:
    """A server on its embedded default, never initialised, nothing uploaded."""
    server = start_tracked_server(tmp_path / "root", "--extra_index_url=")
    yield server
    server.stop()


@pytest.fixture
def configured(tmp_path: Path) -> Iterator[TrackedServer]:
    """A server started with --config/--admin_secret for repository ``team``."""
    config, admin_secret = repository("team")
    (tmp_path / "config.toml").write_text(config)
    (tmp_path / "admin.toml").write_text(admin_secret)
    server = start_tracked_server(
        tmp_path / "root",
        "--extra_index_url=",
        "--config",
        str(tmp_path / "config.toml"),
        "--admin_secret",
        str(tmp_path / "admin.toml"),
    )
    yield server
    server.stop()


def test_anyone_may_initialize_a_pristine_server_once_and_every_worker_switches(
    pristine: TrackedServer,
) -> None:
    server = pristine
    old_local = embedded_read(server)
    assert server.statuses_everywhere("/simple/", old_local) == {200}

    result = initialize(server, *repository("team"))
    assert result.status_code == 200, result.text
    assert "team" in result.text

    assert server.statuses_everywhere("/simple/", read("team")) == {200}
    assert server.statuses_everywhere("/simple/", old_local) == {401}
    for name in ("config.toml", "admin_secret.toml"):
        assert (server.server.root / "initialized" / name).stat().st_mode & 0o777 == 0o600

    again = initialize(server, *repository("intruder"))
    assert again.status_code == 401
    assert again.headers["WWW-Authenticate"].startswith("Basic ")
    assert "admin credential" in again.text
    assert server.statuses_everywhere("/simple/", read("team")) == {200}


def test_anonymous_initialize_is_refused_once_a_package_was_uploaded(
    pristine: TrackedServer, tmp_path: Path
) -> None:
    server = pristine
    embedded = tomllib.loads((server.server.root / "embedded" / "config.toml").read_text())
    wheel = make_wheel(tmp_path / "dist", "demo-pkg", "1.0")
    upload = requests.post(
        f"{server.url}/simple/",
        auth=("local", embedded["local"]["write_secret"]),
        data={":action": "file_upload", "protocol_version": "1", "name": "demo-pkg"},
        files={"content": (wheel.name, wheel.read_bytes())},
        timeout=10,
    )
    assert upload.status_code == 200, upload.text

    config, admin_secret = repository("intruder")
    by_worker = server.statuses_by_worker(
        "/initialize/",
        {},
        method="POST",
        data={"config": config, "admin_secret": admin_secret},
    )
    assert len(by_worker) == 2, by_worker
    assert {status for statuses in by_worker.values() for status in statuses} == {401}
    assert not (server.server.root / "initialized").exists()
    listing = server.statuses_everywhere("/simple/demo-pkg/", embedded_read(server))
    assert listing == {200}


def test_anonymous_initialize_is_refused_on_a_server_started_with_config(
    configured: TrackedServer,
) -> None:
    server = configured
    config, admin_secret = repository("intruder")
    by_worker = server.statuses_by_worker(
        "/initialize/",
        {},
        method="POST",
        data={"config": config, "admin_secret": admin_secret},
    )
    assert len(by_worker) == 2, by_worker
    assert {status for statuses in by_worker.values() for status in statuses} == {401}
    assert server.statuses_everywhere("/simple/", read("team")) == {200}
    assert server.statuses_everywhere("/simple/", read("intruder")) == {401}


def test_admin_may_reinitialize_with_uploaded_files_and_every_worker_switches(
    pristine: TrackedServer,
) -> None:
    server = pristine
    assert initialize(server, *repository("team")).status_code == 200

    config, admin_secret = repository("other")
    files = {
        "config": ("config.toml", config.encode()),
        "admin_secret": ("admin_secret.toml", admin_secret.encode()),
    }
    url = f"{server.url}/initialize/"
    not_admin = requests.post(url, files=files, headers=read("team"), timeout=10)
    assert not_admin.status_code == 401
    assert server.statuses_everywhere("/simple/", read("team")) == {200}

    result = requests.post(url, files=files, headers=admin("team"), timeout=10)
    assert result.status_code == 200, result.text
    assert "other" in result.text
    assert server.statuses_everywhere("/simple/", read("other")) == {200}
    assert server.statuses_everywhere("/simple/", read("team")) == {401}


def test_invalid_posted_config_is_refused_with_400_and_the_old_config_keeps_serving(
    pristine: TrackedServer,
) -> None:
    server = pristine
    config, admin_secret = repository("team")
    invalid: list[tuple[dict[str, str], list[str]]] = [
        (
            {
                "config": config.replace("file_system", "no_such_store"),
                "admin_secret": admin_secret,
            },
            ["the posted config", "[team]", "installed backends: ", "file_system"],
        ),
        ({"config": "[team\n", "admin_secret": admin_secret}, ["the posted config", "TOML"]),
        (
            {"config": config, "admin_secret": repository("other")[1]},
            ["the posted admin secret", "[other] is not in the posted config"],
        ),
        (
            {"config": config.replace("read_secret", "reed_secret"), "admin_secret": admin_secret},
            ["unknown key 'reed_secret'"],
        ),
        ({"config": config}, ["admin_secret"]),
    ]
    for form, fragments in invalid:
        result = requests.post(f"{server.url}/initialize/", data=form, timeout=10)
        assert result.status_code == 400, (form, result.text)
        for fragment in fragments:
            assert fragment in result.text, (fragment, result.text)
        assert "team-read" not in result.text

    assert not (server.server.root / "initialized").exists()
    assert server.statuses_everywhere("/simple/", embedded_read(server)) == {200}
    assert server.statuses_everywhere("/simple/", read("team")) == {401}
    # A refused config does not use up the pristine server's one anonymous initialisation.
    assert initialize(server, config, admin_secret).status_code == 200
    assert server.statuses_everywhere("/simple/", read("team")) == {200}


def test_admin_initialize_of_a_server_started_with_config_is_consistent_across_workers(
    configured: TrackedServer,
) -> None:
    server = configured
    result = initialize(server, *repository("other"), headers=admin("team"))
    new = server.statuses_by_worker("/simple/", read("other"))
    old = server.statuses_by_worker("/simple/", read("team"))
    assert len(new) == 2 and len(old) == 2, (new, old)
    if result.status_code == 200:
        assert all(set(statuses) == {200} for statuses in new.values()), new
        assert all(set(statuses) == {401} for statuses in old.values()), old
    else:
        assert 400 <= result.status_code < 500
        assert all(set(statuses) == {401} for statuses in new.values()), new
        assert all(set(statuses) == {200} for statuses in old.values()), old
