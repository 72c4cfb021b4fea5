"""PEP 792 project status with the real ``private_pypi status`` command: archived refuses
uploads (twine says why) yet installs, quarantined serves no file (pip and uv find nothing),
deprecated only says so; both page formats, pypi-simple, the audit trail, ``update_index`` and
the static export all carry it."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlencode

import pytest
import requests
from pypi_simple import ACCEPT_HTML_ONLY, ACCEPT_JSON_ONLY, ProjectStatus, PyPISimple

from private_pypi_core.index_store import ShardCache, read_remote
from private_pypi_fs.backend import FileSystemBackend, FileSystemConfig
from tests.e2e.clients import (
    client_env,
    output,
    pip_install,
    report,
    twine_upload,
    uv_pip_install,
)
from tests.protocol.attestations import attestation
from tests.protocol.dists_extra import make_rich_wheel
from tests.protocol.helpers import JSON_V1, LocalIndex, cli, parse_html
from tests.server import RunningServer, start_server

pytestmark = pytest.mark.e2e

REASON = 'credential-stealing <code> & "tricks"'


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = start_server(
        tmp_path_factory.mktemp("status") / "root", "--extra_index_url=", public_url=True
    )
    yield running
    running.stop()


def upload(server: RunningServer, path: Path, **fields: str) -> requests.Response:
    return requests.post(
        server.simple_url,
        data={":action": "file_upload", "protocol_version": "1", **fields},
        files={"content": (path.name, path.read_bytes(), "application/octet-stream")},
        auth=("local", server.secret("local", "write")),
        timeout=30,
    )


def publish(server: RunningServer, directory: Path, project: str, version: str) -> Path:
    wheel = make_rich_wheel(directory, project, version)
    response = upload(server, wheel)
    assert response.status_code == 200, response.text
    return wheel


def set_status(
    server: RunningServer, env: dict[str, str], *args: str, secret: str = ""
) -> subprocess.CompletedProcess[str]:
    """``private_pypi status PROJECT STATUS [FLAGS...]``, by default with the write secret."""
    return cli(
        "status",
        *args,
        "--repository",
        "local",
        "--secret",
        secret or server.secret("local", "write"),
        "--url",
        server.url,
        env=env,
    )


def get(server: RunningServer, path: str, accept: str | None = None) -> requests.Response:
    headers = {"Accept": accept} if accept else {}
    return requests.get(
        server.url + path, auth=("local", server.secret()), headers=headers, timeout=10
    )


def json_page(server: RunningServer, project: str) -> dict[str, Any]:
    response = get(server, f"/simple/{project}/", JSON_V1)
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


def html_status(server: RunningServer, project: str) -> tuple[list[str], list[str], list[str]]:
    """The status and reason meta tags and the file links of the HTML page."""
    page = parse_html(get(server, f"/simple/{project}/").text)
    return (
        page.meta_values("pypi:project-status"),
        page.meta_values("pypi:project-status-reason"),
        sorted(page.anchors),
    )


def installed_version(target: Path, module: str) -> str:
    namespace: dict[str, Any] = {}
    exec((target / module / "__init__.py").read_text(), namespace)
    return str(namespace["VERSION"])


def test_a_quarantined_project_offers_nothing_to_install_until_it_is_active_again(
    server: RunningServer, tmp_path: Path
) -> None:
    env = client_env(tmp_path)
    project = "quarantine-pkg"
    wheel = make_rich_wheel(tmp_path / "dist", project, "1.0")
    assert upload(server, wheel, attestations=json.dumps([attestation(wheel)])).status_code == 200
    file_url = f"/simple/{project}/{wheel.name}"
    provenance = f"/integrity/{project}/1.0/{wheel.name}/provenance"
    assert html_status(server, project) == (["active"], [], [wheel.name])  # rendered, cached

    result = set_status(server, env, project, "quarantined", "--reason", REASON)
    assert result.returncode == 0, report(result)
    assert result.stdout == f"{project} is quarantined ({REASON}), was active\n"

    assert html_status(server, project) == (["quarantined"], [REASON], [])
    page = json_page(server, project)
    assert page["meta"]["api-version"] == "1.4"
    assert page["project-status"] == {"status": "quarantined", "reason": REASON}
    assert (page["files"], page["versions"]) == ([], ["1.0"])
    with PyPISimple(server.simple_url, auth=("local", server.secret())) as client:
        for accept in (ACCEPT_JSON_ONLY, ACCEPT_HTML_ONLY):
            parsed = client.get_project_page(project, accept=accept)
            assert (parsed.status, parsed.status_reason) == (ProjectStatus.QUARANTINED, REASON)
            assert parsed.packages == []
    for path in (file_url, f"{file_url}.metadata", provenance, f"/pypi/{project}/json"):
        assert get(server, path).status_code == 404, path
    for name, install in (("pip", pip_install), ("uv", uv_pip_install)):
        refused = install(tmp_path / name, server.credentials_url(), env, project)
        assert refused.returncode != 0, report(refused)
        assert not (tmp_path / name / "quarantine_pkg").exists()
    newer = make_rich_wheel(tmp_path / "dist", project, "2.0")
    response = upload(server, newer)
    assert response.status_code == 400
    assert f"Project '{project}' is quarantined ({REASON}): it takes no new uploads" in (
        response.text
    )

    assert set_status(server, env, project, "active").returncode == 0
    assert html_status(server, project) == (["active"], [], [wheel.name])
    assert get(server, provenance).status_code == 200
    installed = pip_install(tmp_path / "after", server.credentials_url(), env, project)
    assert installed.returncode == 0, report(installed)
    assert installed_version(tmp_path / "after", "quarantine_pkg") == "1.0"


def test_an_archived_project_refuses_uploads_with_the_reason_but_still_installs(
    server: RunningServer, tmp_path: Path
) -> None:
    env = client_env(tmp_path)
    project = "archived-pkg"
    publish(server, tmp_path / "old", project, "1.0")
    result = set_status(server, env, project, "archived", "--reason", "moved to new-pkg")
    assert result.returncode == 0, report(result)

    newer = make_rich_wheel(tmp_path / "new", project, "2.0")
    write = server.secret("local", "write")
    refused = twine_upload(server, [newer], write, env, "--verbose")
    assert refused.returncode != 0, report(refused)
    assert "400" in output(refused), report(refused)
    shown = " ".join(output(refused).split())  # twine wraps the server's answer
    assert "Project 'archived-pkg' is archived (moved to new-pkg): it takes no new uploads" in (
        shown
    ), report(refused)
    assert json_page(server, project)["versions"] == ["1.0"]
    assert json_page(server, project)["project-status"] == {
        "status": "archived",
        "reason": "moved to new-pkg",
    }
    installed = pip_install(tmp_path / "target", server.credentials_url(), env, project)
    assert installed.returncode == 0, report(installed)
    assert installed_version(tmp_path / "target", "archived_pkg") == "1.0"

    assert set_status(server, env, project, "active").returncode == 0
    accepted = twine_upload(server, [newer], write, env)
    assert accepted.returncode == 0, report(accepted)
    assert json_page(server, project)["project-status"] == {"status": "active"}


def test_a_deprecated_project_says_so_and_works_as_before(
    server: RunningServer, tmp_path: Path
) -> None:
    env = client_env(tmp_path)
    project = "deprecated-pkg"
    publish(server, tmp_path / "old", project, "1.0")
    assert set_status(server, env, project, "deprecated", "--reason", "use new-pkg").returncode == 0
    publish(server, tmp_path / "new", project, "2.0")
    assert html_status(server, project)[:2] == (["deprecated"], ["use new-pkg"])
    installed = uv_pip_install(tmp_path / "target", server.credentials_url(), env, project)
    assert installed.returncode == 0, report(installed)
    assert installed_version(tmp_path / "target", "deprecated_pkg") == "2.0"


def test_only_the_write_secret_changes_a_status_never_a_token(
    server: RunningServer, tmp_path: Path
) -> None:
    env = client_env(tmp_path)
    project = "status-guarded"
    publish(server, tmp_path / "dist", project, "1.0")
    created = cli(
        "token",
        "create",
        "--repository",
        "local",
        "--scope",
        "upload",
        "--scope",
        "yank",
        "--secret",
        server.secret("local", "write"),
        "--url",
        server.url,
        env=env,
    )
    assert created.returncode == 0, report(created)
    for secret in (server.secret("local", "read"), created.stdout.strip()):
        result = set_status(server, env, project, "quarantined", secret=secret)
        assert result.returncode == 2, report(result)
        assert "403" in result.stderr, report(result)
    assert json_page(server, project)["project-status"] == {"status": "active"}


def test_a_status_for_a_project_the_repository_does_not_have_is_refused(
    server: RunningServer, tmp_path: Path
) -> None:
    result = set_status(server, client_env(tmp_path), "status-nowhere", "archived")
    assert result.returncode == 2, report(result)
    assert "404" in result.stderr and "status-nowhere" in result.stderr, report(result)
    assert get(server, "/simple/status-nowhere/").status_code == 404


def test_a_status_pep_792_does_not_define_is_refused(server: RunningServer, tmp_path: Path) -> None:
    env = client_env(tmp_path)
    publish(server, tmp_path / "dist", "status-kind", "1.0")
    result = set_status(server, env, "status-kind", "abandoned")
    assert result.returncode == 2, report(result)
    assert "'abandoned' is not a project status" in result.stderr, report(result)
    assert json_page(server, "status-kind")["project-status"] == {"status": "active"}


def test_every_status_change_is_in_the_audit_trail(server: RunningServer, tmp_path: Path) -> None:
    env = client_env(tmp_path)
    project = "status-audited"
    publish(server, tmp_path / "dist", project, "1.0")
    assert set_status(server, env, project, "archived", "--reason", "done").returncode == 0
    assert set_status(server, env, project, "active").returncode == 0
    flags = ["--repository", "local", "--root", str(server.root), "--project", project]
    result = cli("audit", *flags, "--json", env=env)
    assert result.returncode == 0, report(result)
    events = [json.loads(line) for line in result.stdout.splitlines()]
    changes = [
        (event["action"], event.get("reason"), event["previous"], event["identity"])
        for event in events
        if event["action"].startswith("status")
    ]
    assert changes == [
        ("status archived", "done", "active", "secrets: local"),
        ("status active", None, "archived", "secrets: local"),
    ]


def test_update_index_and_the_static_export_keep_the_status(
    server: RunningServer, tmp_path: Path
) -> None:
    env = client_env(tmp_path)
    project = "status-exported"
    wheel = publish(server, tmp_path / "dist", project, "1.0")
    result = set_status(server, env, project, "quarantined", "--reason", "malware")
    assert result.returncode == 0, report(result)
    config = ["--root", str(server.root), "--config", str(server.root / "embedded" / "config.toml")]
    secret = ["--secret", server.secret("local", "write")]
    rebuilt = cli("update_index", "file_system", "local", *secret, *config, env=env)
    assert rebuilt.returncode == 0, report(rebuilt)
    quarantined = {"status": "quarantined", "reason": "malware"}
    assert json_page(server, project)["project-status"] == quarantined

    site = tmp_path / "site"
    exported = cli("export", "file_system", "local", str(site), *config, env=env)
    assert exported.returncode == 0, report(exported)
    folder = site / "simple" / project
    page = json.loads((folder / "index.json").read_text())
    assert (page["project-status"], page["files"]) == (quarantined, [])
    html = parse_html((folder / "index.html").read_text())
    assert html.meta_values("pypi:project-status") == ["quarantined"]
    assert html.anchors == {}
    assert not (folder / wheel.name).exists()


def test_the_index_holds_a_status_only_while_a_project_is_not_active(
    index: LocalIndex, tmp_path: Path
) -> None:
    """In one file (backends without index parts), a status makes the file format 3: a server
    that knows only format 1 or 2 refuses it rather than rewrite it without the status (and
    serve a quarantined project again); without any, format 1 it stays. In parts (the file
    system backend), the root holds the statuses, in format 4, which such a server refuses."""
    index.publish(make_rich_wheel(tmp_path / "dist", "status-format", "1.0"))
    root_file = index.storage / "index.json"

    def change(status: str) -> None:
        result = index.client.simulate_post(
            "/_/status/",
            body=urlencode({"project": "status-format", "status": status}),
            headers={**index.write, "Content-Type": "application/x-www-form-urlencoded"},
        )
        assert result.status_code == 200, result.text

    def in_one_file() -> dict[str, Any]:
        backend = FileSystemBackend(FileSystemConfig(name="local", type="file_system"), index.root)
        read = read_remote(backend, ShardCache(), label="the index")
        return cast(dict[str, Any], json.loads(read.index.to_bytes()))

    change("quarantined")
    root = json.loads(root_file.read_text())
    assert root["format"] == 4
    assert root["projects"] == {"status-format": {"status": "quarantined", "reason": ""}}
    document = in_one_file()
    assert (document["format"], document["projects"]) == (3, root["projects"])
    change("active")
    root = json.loads(root_file.read_text())
    assert (root["format"], "projects" in root) == (4, False)
    document = in_one_file()
    assert (document["format"], "projects" in document) == (1, False)
