"""PEP 592 yank with the real ``private_pypi yank`` / ``unyank`` commands: installers skip a
yanked version unless it is pinned, and say why; both page formats and the JSON API show it."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.dists import make_sdist
from tests.e2e.clients import (
    client_env,
    pip_install,
    report,
    uv_pip_install,
)
from tests.protocol.dists_extra import make_rich_wheel
from tests.protocol.helpers import JSON_V1, cli, parse_html
from tests.server import RunningServer, start_server

pytestmark = pytest.mark.e2e

REASON = 'broken <build> & "quotes"'


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = start_server(tmp_path_factory.mktemp("yank") / "root", "--extra_index_url=")
    yield running
    running.stop()


def publish(server: RunningServer, directory: Path, project: str, *versions: str) -> list[Path]:
    files = [make_rich_wheel(directory, project, version) for version in versions]
    for path in files:
        _upload(server, path)
    return files


def _upload(server: RunningServer, path: Path) -> None:
    response = requests.post(
        server.simple_url,
        data={":action": "file_upload", "protocol_version": "1"},
        files={"content": (path.name, path.read_bytes(), "application/octet-stream")},
        auth=("local", server.secret("local", "write")),
        timeout=30,
    )
    assert response.status_code == 200, response.text


def yank(
    server: RunningServer, env: dict[str, str], *args: str, secret: str = ""
) -> subprocess.CompletedProcess[str]:
    """``private_pypi ACTION PROJECT TARGET [FLAGS...]`` against ``server``, by default with
    the write secret."""
    return cli(
        *args,
        "--repository",
        "local",
        "--secret",
        secret or server.secret("local", "write"),
        "--url",
        server.url,
        env=env,
    )


def html_yanks(server: RunningServer, project: str) -> dict[str, str | None]:
    """``data-yanked`` of each file (``None`` when absent) on the HTML page."""
    response = requests.get(
        f"{server.simple_url}{project}/", auth=("local", server.secret()), timeout=10
    )
    assert response.status_code == 200, response.text
    return {
        name: anchor.attributes.get("data-yanked")
        for name, anchor in parse_html(response.text).anchors.items()
    }


def json_yanks(server: RunningServer, project: str) -> dict[str, object]:
    response = requests.get(
        f"{server.simple_url}{project}/",
        headers={"Accept": JSON_V1},
        auth=("local", server.secret()),
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return {file["filename"]: file["yanked"] for file in response.json()["files"]}


def api_release(server: RunningServer, project: str, version: str) -> dict[str, Any]:
    response = requests.get(
        f"{server.url}/pypi/{project}/{version}/json", auth=("local", server.secret()), timeout=10
    )
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document


def pip_install_from(
    server: RunningServer, target: Path, env: dict[str, str], requirement: str
) -> subprocess.CompletedProcess[str]:
    return pip_install(target, server.credentials_url(), env, requirement)


def uv_install_from(
    server: RunningServer, target: Path, env: dict[str, str], requirement: str
) -> subprocess.CompletedProcess[str]:
    return uv_pip_install(target, server.credentials_url(), env, requirement)


def installed_version(target: Path, module: str) -> str:
    """``VERSION`` of the module installed in ``target``, read from its source."""
    text = (target / module / "__init__.py").read_text()
    namespace: dict[str, Any] = {}
    exec(text, namespace)
    return str(namespace["VERSION"])


def test_installers_skip_a_yanked_version_unless_pinned_and_show_the_reason(
    server: RunningServer, tmp_path: Path
) -> None:
    env = client_env(tmp_path)
    publish(server, tmp_path / "dist", "yank-skip", "1.0", "2.0")
    result = yank(server, env, "yank", "yank-skip", "2.0", "--reason", REASON)
    assert result.returncode == 0, report(result)
    assert "yank_skip-2.0-py3-none-any.whl" in result.stdout

    for name, install in (("pip", pip_install_from), ("uv", uv_install_from)):
        latest = install(server, tmp_path / f"{name}-latest", env, "yank-skip")
        assert latest.returncode == 0, report(latest)
        assert installed_version(tmp_path / f"{name}-latest", "yank_skip") == "1.0", name

        pinned = install(server, tmp_path / f"{name}-pinned", env, "yank-skip==2.0")
        assert pinned.returncode == 0, report(pinned)
        assert installed_version(tmp_path / f"{name}-pinned", "yank_skip") == "2.0", name
        assert "yanked" in pinned.stderr.lower(), report(pinned)
        assert REASON in pinned.stderr, report(pinned)


def test_the_reason_shows_in_both_page_formats_and_the_json_api_until_unyanked(
    server: RunningServer, tmp_path: Path
) -> None:
    env = client_env(tmp_path)
    old, new = publish(server, tmp_path / "dist", "yank-pages", "1.0", "2.0")
    assert yank(server, env, "yank", "yank-pages", "2.0", "--reason", REASON).returncode == 0

    assert html_yanks(server, "yank-pages") == {old.name: None, new.name: REASON}
    assert json_yanks(server, "yank-pages") == {old.name: False, new.name: REASON}
    release = api_release(server, "yank-pages", "2.0")
    assert (release["info"]["yanked"], release["info"]["yanked_reason"]) == (True, REASON)
    latest = requests.get(
        f"{server.url}/pypi/yank-pages/json", auth=("local", server.secret()), timeout=10
    ).json()
    assert latest["info"]["version"] == "1.0"

    result = yank(server, env, "unyank", "yank-pages", "2.0")
    assert result.returncode == 0, report(result)
    assert html_yanks(server, "yank-pages") == {old.name: None, new.name: None}
    assert json_yanks(server, "yank-pages") == {old.name: False, new.name: False}
    assert api_release(server, "yank-pages", "2.0")["info"]["yanked"] is False
    reinstalled = uv_install_from(server, tmp_path / "after", env, "yank-pages")
    assert reinstalled.returncode == 0, report(reinstalled)
    assert installed_version(tmp_path / "after", "yank_pages") == "2.0"
    assert "yanked" not in reinstalled.stderr.lower()


def test_a_yank_without_a_reason_is_still_a_yank(server: RunningServer, tmp_path: Path) -> None:
    env = client_env(tmp_path)
    (wheel,) = publish(server, tmp_path / "dist", "yank-bare", "1.0")
    assert yank(server, env, "yank", "yank-bare", "1.0").returncode == 0
    assert html_yanks(server, "yank-bare") == {wheel.name: ""}
    assert json_yanks(server, "yank-bare") == {wheel.name: True}
    result = pip_install_from(server, tmp_path / "target", env, "yank-bare")
    assert result.returncode != 0, report(result)
    assert "no matching distribution" in result.stderr.lower(), report(result)
    assert not (tmp_path / "target" / "yank_bare").exists()


def test_yank_with_the_read_secret_exits_2_and_changes_nothing(
    server: RunningServer, tmp_path: Path
) -> None:
    env = client_env(tmp_path)
    (wheel,) = publish(server, tmp_path / "dist", "yank-refused", "1.0")
    result = yank(
        server, env, "yank", "yank-refused", "1.0", "--reason", "x", secret=server.secret()
    )
    assert result.returncode == 2, report(result)
    assert result.stderr.startswith("Error: "), report(result)
    assert "403" in result.stderr and "write secret" in result.stderr, report(result)
    assert "Traceback" not in result.stderr
    assert json_yanks(server, "yank-refused") == {wheel.name: False}


@pytest.mark.parametrize("missing", ["version", "project"])
def test_yank_of_something_that_does_not_exist_exits_2_saying_so(
    server: RunningServer, tmp_path: Path, missing: str
) -> None:
    env = client_env(tmp_path)
    existing = f"yank-missing-{missing}"
    (wheel,) = publish(server, tmp_path / "dist", existing, "1.0")
    project, target = (existing, "9.0") if missing == "version" else ("no-such-project", "1.0")
    result = yank(server, env, "yank", project, target, "--reason", "x")
    assert result.returncode == 2, report(result)
    assert "404" in result.stderr and target in result.stderr, report(result)
    assert "Traceback" not in result.stderr
    assert json_yanks(server, existing) == {wheel.name: False}


def test_yanking_by_filename_yanks_only_that_file(server: RunningServer, tmp_path: Path) -> None:
    env = client_env(tmp_path)
    (wheel,) = publish(server, tmp_path / "dist", "yank-one", "1.0")
    sdist = make_sdist(tmp_path / "dist", "yank-one", "1.0")
    _upload(server, sdist)
    result = yank(server, env, "yank", "yank-one", sdist.name, "--reason", "sdist is broken")
    assert result.returncode == 0, report(result)
    assert result.stdout.strip() == f"yanked {sdist.name}"
    assert json_yanks(server, "yank-one") == {wheel.name: False, sdist.name: "sdist is broken"}
    release = api_release(server, "yank-one", "1.0")
    assert release["info"]["yanked"] is False  # the wheel of 1.0 still stands
    assert {f["filename"]: f["yanked"] for f in release["urls"]} == {
        wheel.name: False,
        sdist.name: True,
    }


def test_update_index_keeps_the_yank(server: RunningServer, tmp_path: Path) -> None:
    env = client_env(tmp_path)
    old, new = publish(server, tmp_path / "dist", "yank-kept", "1.0", "2.0")
    assert yank(server, env, "yank", "yank-kept", "2.0", "--reason", REASON).returncode == 0
    result = cli(
        "update_index",
        "file_system",
        "local",
        "--secret",
        server.secret("local", "write"),
        "--root",
        str(server.root),
        "--config",
        str(server.root / "embedded" / "config.toml"),
        env=env,
    )
    assert result.returncode == 0, report(result)
    assert json_yanks(server, "yank-kept") == {old.name: False, new.name: REASON}
    assert html_yanks(server, "yank-kept") == {old.name: None, new.name: REASON}
    document = json.loads(
        requests.get(
            f"{server.url}/pypi/yank-kept/json", auth=("local", server.secret()), timeout=10
        ).text
    )
    assert document["info"]["version"] == "1.0"
