"""The real server (gunicorn, uvicorn workers) on the GitHub backend, pointed at the emulator,
driven by twine, pip, uv and the ``private_pypi`` command line."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from private_pypi_core.index_store import ShardCache, read_remote
from tests.dists import make_sdist, make_wheel
from tests.e2e.clients import (
    client_env,
    executable,
    output,
    pip_install,
    report,
    run,
    uv_pip_install,
)
from tests.github.conftest import FULL_NAME, OWNER, REPO, Scene
from tests.server import RunningServer, private_pypi_command, start_server

pytestmark = pytest.mark.e2e

TOKEN_VARIABLE = "E2E_GITHUB_TOKEN"
PROJECT, VERSION = "gh-demo", "1.0+abc"  # a local version: "+" has to survive GitHub


@pytest.fixture
def config(scene: Scene, tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f'[team]\ntype = "github"\nowner = "{OWNER}"\nrepo = "{REPO}"\n'
        f'api_url = "{scene.emulator.api_url}"\ntoken_env = "{TOKEN_VARIABLE}"\n'
        "sync_index_interval = 1\n"
    )
    return path


@pytest.fixture
def server(scene: Scene, config: Path, tmp_path: Path) -> Iterator[RunningServer]:
    admin = tmp_path / "admin_secret.toml"
    admin.write_text(f'[team]\ntype = "github"\nenv = "{TOKEN_VARIABLE}"\n')
    running = start_server(
        tmp_path / "root",
        "--config",
        str(config),
        "--admin_secret",
        str(admin),
        "--extra_index_url=",
        env={TOKEN_VARIABLE: scene.writer},
    )
    yield running
    running.stop()
    assert scene.writer not in running.log() and scene.reader not in running.log()


def twine_upload(
    server: RunningServer, token: str, files: list[Path], env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    return run(
        [
            executable("twine"),
            "upload",
            "--non-interactive",
            "--disable-progress-bar",
            "--repository-url",
            server.simple_url,
            "--username=team",
            f"--password={token}",
            *map(str, files),
        ],
        env,
    )


def index_url(server: RunningServer, token: str) -> str:
    return f"http://team:{token}@127.0.0.1:{server.port}/simple/"


def imported_version(target: Path, env: dict[str, str]) -> str:
    module = PROJECT.replace("-", "_")
    code = (
        f"import sys; sys.path.insert(0, {str(target)!r}); import {module}; print({module}.VERSION)"
    )
    result = run([sys.executable, "-I", "-c", code], env)
    assert result.returncode == 0, report(result)
    return result.stdout.strip()


def test_twine_upload_then_pip_and_uv_install_from_release_assets(
    scene: Scene, server: RunningServer, tmp_path: Path
) -> None:
    env = client_env(tmp_path)
    files = [
        make_wheel(tmp_path / "dist", PROJECT, VERSION),
        make_sdist(tmp_path / "dist", PROJECT, VERSION),
    ]
    result = twine_upload(server, scene.writer, files, env)
    assert result.returncode == 0, report(result)
    stored = {
        a.label for tag, a in scene.emulator.assets(FULL_NAME) if tag == f"{PROJECT}-{VERSION}"
    }
    assert {path.name for path in files} <= stored, "files (and their metadata) are assets"

    pip_target = tmp_path / "pip-target"
    result = pip_install(pip_target, index_url(server, scene.reader), env, f"{PROJECT}=={VERSION}")
    assert result.returncode == 0, report(result)
    assert imported_version(pip_target, env) == VERSION

    uv_target = tmp_path / "uv-target"
    result = uv_pip_install(
        uv_target, index_url(server, scene.reader), env, f"{PROJECT}=={VERSION}"
    )
    assert result.returncode == 0, report(result)
    assert imported_version(uv_target, env) == VERSION

    downloads = [c for c in scene.emulator.calls if c.host == "objects"]
    assert len(downloads) >= 2, "the wheel reached each installer from its signed URL"
    assert all("Authorization" not in c.headers for c in downloads)


def test_read_only_token_may_install_but_not_upload(
    scene: Scene, server: RunningServer, tmp_path: Path
) -> None:
    env = client_env(tmp_path)
    wheel = make_wheel(tmp_path / "dist", PROJECT, "2.0")
    result = twine_upload(server, scene.reader, [wheel], env)
    assert result.returncode != 0
    assert "403" in output(result)
    stranger = twine_upload(server, scene.stranger, [wheel], env)
    assert stranger.returncode != 0 and "401" in output(stranger)
    assert scene.emulator.assets(FULL_NAME) == []
    listing = requests.get(server.simple_url, auth=("team", scene.reader), timeout=10)
    assert listing.status_code == 200


def test_github_refusing_for_an_hour_refuses_the_token_with_a_readable_log_line(
    scene: Scene, server: RunningServer
) -> None:
    """An auth provider that fails refuses the credential; the log says why, in one line."""
    scene.emulator.repo(FULL_NAME).roles["dave"] = "pull"
    token = scene.emulator.add_token("dave")
    scene.emulator.exhaust_rate_limit("dave", reset_in=3600)
    answer = requests.get(server.simple_url, auth=("team", token), timeout=10)
    assert answer.status_code == 401
    line = next(line for line in server.log().splitlines() if "auth provider 'github'" in line)
    assert "GitHub's rate limit refuses GET" in line
    assert "Traceback" not in server.log()


def test_update_index_finds_a_hand_upload_and_the_server_syncs_it(
    scene: Scene, server: RunningServer, config: Path, tmp_path: Path
) -> None:
    backend = scene.backend()
    wheel = make_wheel(tmp_path / "dist", "by-hand", "3.0")
    release = backend.releases.create("by-hand-3.0", "by-hand 3.0")
    backend.releases.upload(release, wheel, wheel.name)

    result = subprocess.run(
        [
            *private_pypi_command(),
            "update_index",
            "github",
            "team",
            "--config",
            str(config),
            "--secret_env",
            TOKEN_VARIABLE,
            "--root",
            str(tmp_path / "cli-root"),
        ],
        env={**client_env(tmp_path), TOKEN_VARIABLE: scene.writer},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    index = read_remote(backend, ShardCache(), label="index").index
    assert index.entries[wheel.name].requires_python is None
    assert index.entries[wheel.name].metadata_sha256, "its core metadata was stored beside it"

    deadline = time.monotonic() + 15
    page = ""
    while time.monotonic() < deadline and wheel.name not in page:
        time.sleep(0.3)
        page = requests.get(
            f"{server.simple_url}by-hand/", auth=("team", scene.reader), timeout=5
        ).text
    assert wheel.name in page, "the server synced the rebuilt index"
