"""A repository made with ``fs.init_pkg_repo`` and served with ``--config``: ``update_index``
backfills core metadata for files stored by hand, PEP 708 ``tracks`` / ``alternate-locations``
come from the config, and a private project is never answered from the extra index."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from pypi_simple import ACCEPT_HTML_ONLY, ACCEPT_JSON_ONLY, PyPISimple

from private_pypi_core.backend import DistFile
from private_pypi_core.index_store import ShardCache, read_remote, write_remote
from private_pypi_fs.backend import FileSystemBackend, FileSystemConfig
from tests.dists import make_sdist
from tests.e2e.clients import client_env, pip_command, report, run
from tests.protocol.dists_extra import (
    core_metadata,
    make_corrupt_wheel,
    make_rich_wheel,
    make_sdist_with_metadata,
)
from tests.protocol.helpers import (
    JSON_V1,
    StaticIndex,
    absolute,
    cli,
    parse_html,
    project_html,
    sha256_hex,
    vary_tokens,
)
from tests.server import RunningServer, start_server

pytestmark = pytest.mark.e2e

TRACKS = ["https://example.invalid/simple/demo-pkg/"]
ALTERNATES = [
    "https://mirror-a.example.invalid/simple/demo-pkg/",
    "https://mirror-b.example.invalid/simple/demo-pkg/",
]
PEP_708_CONFIG = f"""
[team.tracks]
demo-pkg = {json.dumps(TRACKS)}

[team.alternate_locations]
Demo_Pkg = {json.dumps(ALTERNATES)}
"""
# Old enough to be told apart from any upload made by the tests.
STORED_AT = datetime(2021, 2, 3, 4, 5, 6, 789012, tzinfo=UTC)


@dataclass
class Team:
    server: RunningServer
    extra: StaticIndex
    config: Path
    read: str
    write: str

    @property
    def storage(self) -> Path:
        return self.server.root / "cache" / "team" / "storage"

    def get(self, path: str, accept: str | None = None, follow: bool = False) -> Any:
        headers = {"Accept": accept} if accept else {}
        return requests.get(
            self.server.url + path,
            headers=headers,
            auth=("team", self.read),
            allow_redirects=follow,
            timeout=10,
        )

    def upload(self, path: Path) -> None:
        response = requests.post(
            self.server.simple_url,
            data={":action": "file_upload", "protocol_version": "1"},
            files={"content": (path.name, path.read_bytes(), "application/octet-stream")},
            auth=("team", self.write),
            timeout=30,
        )
        assert response.status_code == 200, response.text

    def update_index(self, env: dict[str, str]) -> None:
        result = cli(
            "update_index",
            "file_system",
            "team",
            "--secret",
            self.write,
            "--root",
            str(self.server.root),
            "--config",
            str(self.config),
            env=env,
        )
        assert result.returncode == 0, report(result)

    def files_json(self, project: str) -> dict[str, dict[str, Any]]:
        response = self.get(f"/simple/{project}/", JSON_V1)
        assert response.status_code == 200, response.text
        return {file["filename"]: file for file in response.json()["files"]}

    def pypi_simple(self) -> PyPISimple:
        return PyPISimple(self.server.simple_url, auth=("team", self.read))


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Team]:
    base = tmp_path_factory.mktemp("team")
    config, admin_secret = base / "config.toml", base / "admin_secret.toml"
    env = client_env(base)
    made = cli(
        "fs.init_pkg_repo",
        "--name",
        "team",
        "--config",
        str(config),
        "--admin_secret",
        str(admin_secret),
        env=env,
    )
    assert made.returncode == 0, report(made)
    with open(config, "a") as file:
        file.write(PEP_708_CONFIG)
    secrets = tomllib.loads(config.read_text())["team"]
    extra = StaticIndex(
        {
            "/simple/demo-pkg/": project_html(["demo_pkg-99.0-py3-none-any.whl"]),
            "/simple/public-only/": project_html(["public_only-1.0-py3-none-any.whl"]),
        }
    )
    server = start_server(
        base / "root",
        f"--config={config}",
        f"--admin_secret={admin_secret}",
        f"--extra_index_url={extra.url}/simple/",
    )
    try:
        team = Team(server, extra, config, secrets["read_secret"], secrets["write_secret"])
        dist = base / "dist"
        team.upload(make_rich_wheel(dist, "demo-pkg", "1.0"))
        team.upload(make_rich_wheel(dist, "plain-pkg", "1.0"))
        yield team
    finally:
        server.stop()
        extra.stop()


# --- PEP 708 -------------------------------------------------------------------------------


def test_tracks_and_alternate_locations_are_in_the_html_head_of_that_project_only(
    team: Team,
) -> None:
    page = parse_html(team.get("/simple/demo-pkg/").text)
    assert page.meta_values("pypi:tracks") == TRACKS
    assert sorted(page.meta_values("pypi:alternate-locations")) == ALTERNATES
    plain = parse_html(team.get("/simple/plain-pkg/").text)
    assert plain.meta_values("pypi:tracks") == []
    assert plain.meta_values("pypi:alternate-locations") == []
    with team.pypi_simple() as client:
        read = client.get_project_page("demo-pkg", accept=ACCEPT_HTML_ONLY)
    assert (read.tracks, sorted(read.alternate_locations)) == (TRACKS, ALTERNATES)


def test_alternate_locations_are_in_the_json_page_of_that_project_only(team: Team) -> None:
    page = team.get("/simple/demo-pkg/", JSON_V1).json()
    assert sorted(page["alternate-locations"]) == ALTERNATES
    plain = team.get("/simple/plain-pkg/", JSON_V1).json()
    assert "alternate-locations" not in plain
    assert "tracks" not in plain and "tracks" not in plain["meta"]
    with team.pypi_simple() as client:
        read = client.get_project_page("demo-pkg", accept=ACCEPT_JSON_ONLY)
    assert sorted(read.alternate_locations) == ALTERNATES


def test_tracks_are_in_the_json_meta_where_pep_708_puts_them(team: Team) -> None:
    page = team.get("/simple/demo-pkg/", JSON_V1).json()
    assert page["meta"].get("tracks") == TRACKS, page
    with team.pypi_simple() as client:
        assert client.get_project_page("demo-pkg", accept=ACCEPT_JSON_ONLY).tracks == TRACKS


# --- Dependency confusion ------------------------------------------------------------------


@pytest.mark.parametrize("accept", [None, JSON_V1])
def test_a_private_project_is_answered_privately_even_when_the_extra_index_has_it(
    team: Team, accept: str | None
) -> None:
    requested_before = list(team.extra.requested)
    response = team.get("/simple/demo-pkg/", accept)
    assert response.status_code == 200, response.headers
    listed = (
        {f["filename"] for f in response.json()["files"]}
        if accept
        else set(parse_html(response.text).anchors)
    )
    assert listed == {"demo_pkg-1.0-py3-none-any.whl"}
    assert team.extra.requested == requested_before


def test_pip_installs_the_private_project_not_the_extra_indexs_newer_one(
    team: Team, tmp_path: Path
) -> None:
    report_path = tmp_path / "report.json"
    index_url = f"http://team:{team.read}@{team.server.url.removeprefix('http://')}/simple/"
    result = run(
        pip_command(
            "install",
            "--no-cache-dir",
            "--dry-run",
            "--ignore-installed",
            "--report",
            str(report_path),
            "--index-url",
            index_url,
            "demo-pkg",
        ),
        client_env(tmp_path),
    )
    assert result.returncode == 0, report(result)
    install = json.loads(report_path.read_text())["install"]
    assert [(i["metadata"]["name"], i["metadata"]["version"]) for i in install] == [
        ("demo-pkg", "1.0")
    ]
    assert not [path for path in team.extra.requested if "demo" in path]


@pytest.mark.parametrize("accept", [None, JSON_V1])
def test_only_a_missing_project_is_redirected_to_the_extra_index(
    team: Team, accept: str | None
) -> None:
    response = team.get("/simple/public-only/", accept)
    assert response.status_code == 303
    assert response.headers["location"] == f"{team.extra.url}/simple/public-only/"
    assert "accept" in vary_tokens(response.headers.get("vary"))
    followed = team.get("/simple/public-only/", accept, follow=True)
    assert followed.status_code == 200
    assert followed.url == f"{team.extra.url}/simple/public-only/"
    assert "public_only-1.0-py3-none-any.whl" in followed.text
    assert "/simple/public-only/" in team.extra.requested


# --- update_index backfills core metadata ----------------------------------------------------


def _store_by_hand(team: Team, project: str, *paths: Path) -> None:
    folder = team.storage / project
    folder.mkdir(parents=True, exist_ok=True)
    for path in paths:
        copy = folder / path.name
        shutil.copyfile(path, copy)
        os.utime(copy, (STORED_AT.timestamp(), STORED_AT.timestamp()))


def test_update_index_backfills_metadata_and_upload_time_for_files_stored_by_hand(
    team: Team, tmp_path: Path
) -> None:
    dist = tmp_path / "dist"
    wheel = make_rich_wheel(
        dist, "hand-pkg", "1.0", core_metadata("hand-pkg", "1.0", requires_python=">=3.7")
    )
    new_sdist = make_sdist_with_metadata(
        dist, "hand-pkg", "1.0", core_metadata("hand-pkg", "1.0", metadata_version="2.2")
    )
    old_sdist = make_sdist(dist, "hand-pkg", "0.9")  # Metadata-Version 2.1: not trusted
    broken = make_corrupt_wheel(dist, "hand-pkg", "0.8")
    _store_by_hand(team, "hand-pkg", wheel, new_sdist, old_sdist, broken)
    assert team.get("/simple/hand-pkg/").status_code == 303  # not indexed yet: not ours

    team.update_index(client_env(tmp_path))

    stored = {p.name for p in (team.storage / "hand-pkg").iterdir()}
    assert {f"{wheel.name}.metadata", f"{new_sdist.name}.metadata"} <= stored
    assert f"{old_sdist.name}.metadata" not in stored
    assert f"{broken.name}.metadata" not in stored
    files = team.files_json("hand-pkg")
    assert set(files) >= {wheel.name, new_sdist.name, old_sdist.name}
    for path in (wheel, new_sdist):
        file = files[path.name]
        served = team.get(f"/simple/hand-pkg/{path.name}.metadata")
        assert served.status_code == 200, path.name
        assert file["core-metadata"] == {"sha256": sha256_hex(served.content)}
        assert file["upload-time"] == STORED_AT.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        assert file["hashes"]["sha256"] == sha256_hex(path.read_bytes())
    assert files[wheel.name]["requires-python"] == ">=3.7"
    assert files[old_sdist.name]["core-metadata"] is False
    assert files.get(broken.name, {"core-metadata": False})["core-metadata"] is False
    anchors = parse_html(team.get("/simple/hand-pkg/").text).anchors
    served = team.get(f"/simple/hand-pkg/{wheel.name}.metadata").content
    expected = f"sha256={sha256_hex(served)}"
    assert anchors[wheel.name].attributes["data-core-metadata"] == expected
    assert anchors[wheel.name].attributes["data-dist-info-metadata"] == expected
    assert "data-core-metadata" not in anchors[old_sdist.name].attributes


def test_update_index_keeps_the_metadata_of_uploaded_files_advertised_and_served(
    team: Team, tmp_path: Path
) -> None:
    team.update_index(client_env(tmp_path))
    for project in ("demo-pkg", "plain-pkg"):
        base = f"{team.server.url}/simple/{project}/"
        for name, file in team.files_json(project).items():
            if file["core-metadata"]:
                url = absolute(base, file["url"]) + ".metadata"
                served = requests.get(url, auth=("team", team.read), timeout=10)
                assert served.status_code == 200, name
                assert file["core-metadata"] == {"sha256": sha256_hex(served.content)}


def _backend(team: Team) -> FileSystemBackend:
    return FileSystemBackend(FileSystemConfig(name="team", type="file_system"), team.server.root)


def _rewrite_remote_index_entry(team: Team, filename: str, **changes: Any) -> None:
    """Change one entry of the remote index through the core's own index API, as an index
    written by an earlier release (before core metadata) would have it."""
    backend = _backend(team)
    read = read_remote(backend, ShardCache(), label="the team index")
    entry = dataclasses.replace(read.index.entries[filename], **changes)
    write_remote(backend, read, read.index.with_entry(entry), ShardCache())


def test_update_index_backfills_metadata_for_files_indexed_before_metadata_existed(
    team: Team, tmp_path: Path
) -> None:
    wheel = make_rich_wheel(
        tmp_path, "early-pkg", "1.0", core_metadata("early-pkg", "1.0", requires_python=">=3.6")
    )
    team.upload(wheel)
    _backend(team).delete_file(DistFile(f"{wheel.name}.metadata", "early-pkg", "1.0"))
    # Such an index has neither the metadata nor the digests other than sha256 (both came in
    # one release): update_index reads the file again for them.
    _rewrite_remote_index_entry(
        team, wheel.name, metadata_sha256=None, requires_python=None, md5=None, blake2b_256=None
    )

    team.update_index(client_env(tmp_path))

    file = team.files_json("early-pkg")[wheel.name]
    assert file["core-metadata"] is not False, file
    served = team.get(f"/simple/early-pkg/{wheel.name}.metadata")
    assert served.status_code == 200
    assert file["core-metadata"] == {"sha256": sha256_hex(served.content)}
    assert file.get("requires-python") == ">=3.6"
    assert file["hashes"]["sha256"] == sha256_hex(wheel.read_bytes())


def test_update_index_stops_advertising_metadata_that_is_no_longer_stored(
    team: Team, tmp_path: Path
) -> None:
    wheel = make_rich_wheel(tmp_path, "pruned-pkg", "1.0")
    team.upload(wheel)
    (team.storage / "pruned-pkg" / f"{wheel.name}.metadata").unlink()

    team.update_index(client_env(tmp_path))

    file = team.files_json("pruned-pkg")[wheel.name]
    served = team.get(f"/simple/pruned-pkg/{wheel.name}.metadata")
    if file["core-metadata"]:
        assert served.status_code == 200, f"advertised {file['core-metadata']}, served 404"
        assert file["core-metadata"] == {"sha256": sha256_hex(served.content)}
