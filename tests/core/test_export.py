"""``private_pypi export``: the static site it writes, served by a plain static web server
(Python's http.server), installs with real pip and lists what the live server lists."""

from __future__ import annotations

import contextlib
import hashlib
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from pypi_simple import DistributionPackage, IndexPage, ProjectPage

from tests.core.test_cli import assert_one_line_error, run
from tests.dists import make_sdist, make_wheel
from tests.e2e.clients import client_env, pip_install, publish_with_requests, report
from tests.server import STARTUP_SECONDS, RunningServer, free_port, start_server

JSON_PAGE = "application/vnd.pypi.simple.v1+json"
WHEEL = "demo_pkg-1.0-py3-none-any.whl"


@dataclass(frozen=True)
class StaticServer:
    url: str
    log_path: Path

    def paths(self) -> list[str]:
        """The paths requested so far, in order."""
        return re.findall(r'"GET (\S+) HTTP', self.log_path.read_text())


@contextlib.contextmanager
def static_server(folder: Path, log_path: Path) -> Iterator[StaticServer]:
    """``python -m http.server`` serving ``folder`` on 127.0.0.1."""
    port = free_port()
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-u", "-m", "http.server", "--bind", "127.0.0.1", str(port)],
            cwd=folder,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = StaticServer(f"http://127.0.0.1:{port}", log_path)
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            try:
                requests.get(f"{server.url}/", timeout=2)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline and process.poll() is None, log_path.read_text()
                time.sleep(0.05)
        yield server
    finally:
        process.terminate()
        process.wait(timeout=10)


@dataclass(frozen=True)
class Published:
    """A live server whose embedded repository ``local`` holds the files below."""

    server: RunningServer
    files: dict[str, Path]  # by filename

    def export(self, dest: Path, *flags: str) -> subprocess.CompletedProcess[str]:
        config = self.server.root / "embedded" / "config.toml"
        return run(
            "export",
            "file_system",
            "local",
            str(dest),
            "--config",
            str(config),
            "--root",
            str(self.server.root),
            *flags,
        )

    def live(self, path: str) -> requests.Response:
        auth = ("local", self.server.secret())
        response = requests.get(f"{self.server.simple_url}{path}", auth=auth, timeout=10)
        assert response.status_code == 200, response.text
        return response


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Published]:
    """demo-pkg 1.0 (wheel), 1.5 (yanked), 2.0 (Requires-Python >=4); old-pkg 0.1, an sdist
    whose PKG-INFO is too old to be served as core metadata."""
    folder = tmp_path_factory.mktemp("published")
    dist = folder / "dist"
    files = [
        (make_wheel(dist, "demo-pkg", "1.0"), "demo-pkg", "1.0"),
        (make_wheel(dist, "demo-pkg", "1.5"), "demo-pkg", "1.5"),
        (make_wheel(dist, "demo-pkg", "2.0", requires_python=">=4"), "demo-pkg", "2.0"),
        (make_sdist(dist, "old-pkg", "0.1"), "old-pkg", "0.1"),
    ]
    server = start_server(folder / "root", "--extra_index_url=")
    try:
        for path, name, version in files:
            publish_with_requests(server, path, name, version)
        yank = requests.post(
            f"{server.url}/yank/",
            data={"project": "demo-pkg", "target": "1.5", "reason": "broken <build>"},
            auth=("local", server.secret("local", "write")),
            timeout=10,
        )
        assert yank.status_code == 200, yank.text
        yield Published(server, {path.name: path for path, _, _ in files})
    finally:
        server.stop()


def test_pip_installs_from_the_exported_site_reading_only_the_metadata_of_other_versions(
    published: Published, tmp_path: Path
) -> None:
    dest = tmp_path / "site"
    result = published.export(dest)
    assert result.returncode == 0, result.stderr
    assert "Exported 2 projects of 'local'" in result.stdout
    with static_server(dest, tmp_path / "http.log") as static:
        target = tmp_path / "target"
        installed = pip_install(target, f"{static.url}/simple/", client_env(tmp_path), "demo-pkg")
        requested = static.paths()
    assert installed.returncode == 0, report(installed)
    # 1.5 is yanked and 2.0 wants Python 4: pip takes 1.0, knowing it from its page and metadata.
    assert "VERSION = '1.0'" in (target / "demo_pkg" / "__init__.py").read_text()
    assert f"/simple/demo-pkg/{WHEEL}.metadata" in requested
    assert [path for path in requested if path.endswith(".whl")] == [f"/simple/demo-pkg/{WHEEL}"]


def _listed(package: DistributionPackage, *, json: bool) -> tuple[object, ...]:
    """What a page says of a file (JSON also says size and upload time)."""
    said = (
        package.filename,
        package.url.rsplit("/", 1)[-1],
        package.digests,
        package.requires_python,
        package.is_yanked,
        package.yanked_reason,
        bool(package.has_metadata),  # HTML says None for "not advertised", JSON False
        package.metadata_digests,
    )
    return (*said, package.size, package.upload_time) if json else said


def test_exported_pages_are_the_servers_and_list_what_it_lists(
    published: Published, tmp_path: Path
) -> None:
    dest = tmp_path / "site"
    assert published.export(dest).returncode == 0
    live_root = IndexPage.from_json_data(published.live("?format=json").json())
    projects = live_root.projects
    assert projects == ["demo-pkg", "old-pkg"]
    with static_server(dest, tmp_path / "http.log") as static:
        simple = f"{static.url}/simple/"
        html_root = IndexPage.from_html(requests.get(simple, timeout=5).text)
        json_root = IndexPage.from_json_data(requests.get(f"{simple}index.json", timeout=5).json())
        assert html_root.projects == json_root.projects
        assert json_root.projects == projects
        for project in projects:
            live_json = published.live(f"{project}/?format=json")
            live_html = published.live(f"{project}/")  # no Accept: the legacy HTML page
            assert (dest / "simple" / project / "index.json").read_bytes() == live_json.content
            assert (dest / "simple" / project / "index.html").read_bytes() == live_html.content

            base = f"{simple}{project}/"
            live = ProjectPage.from_json_data(live_json.json(), base)
            static_html = ProjectPage.from_html(project, requests.get(base, timeout=5).text, base)
            static_json = ProjectPage.from_json_data(
                requests.get(f"{base}index.json", timeout=5).json(), f"{base}index.json"
            )
            assert static_json.versions == live.versions
            assert [_listed(p, json=True) for p in static_json.packages] == [
                _listed(p, json=True) for p in live.packages
            ]
            assert [_listed(p, json=False) for p in static_html.packages] == [
                _listed(p, json=False) for p in live.packages
            ]
            for package in static_html.packages:
                body = requests.get(package.url, timeout=5).content
                assert body == published.files[package.filename].read_bytes()
                assert hashlib.sha256(body).hexdigest() == package.digests["sha256"]
                metadata = requests.get(package.metadata_url, timeout=5)
                if package.has_metadata:
                    digest = hashlib.sha256(metadata.content).hexdigest()
                    assert package.metadata_digests == {"sha256": digest}
                else:
                    assert metadata.status_code == 404
    # old-pkg's page, the last one: its sdist is listed without core metadata
    assert [p.filename for p in static_json.packages] == ["old_pkg-0.1.tar.gz"]
    assert not any(p.has_metadata for p in static_html.packages + static_json.packages)
    assert not (dest / "simple" / "old-pkg" / "old_pkg-0.1.tar.gz.metadata").exists()
    yanked = ProjectPage.from_html("demo-pkg", (dest / "simple/demo-pkg/index.html").read_text())
    [yanked_wheel] = [p for p in yanked.packages if p.is_yanked]
    assert (yanked_wheel.filename, yanked_wheel.yanked_reason) == (
        "demo_pkg-1.5-py3-none-any.whl",
        "broken <build>",
    )
    assert {p.requires_python for p in yanked.packages} == {None, ">=4"}


def test_export_with_files_url_links_the_files_where_they_are_served(
    published: Published, tmp_path: Path
) -> None:
    full = tmp_path / "full"
    assert published.export(full).returncode == 0
    with static_server(full, tmp_path / "files.log") as files:
        pages = tmp_path / "pages"
        result = published.export(pages, f"--files_url={files.url}/simple/")
        assert result.returncode == 0, result.stderr
        written = [p.name for p in (pages / "simple").rglob("*") if p.is_file()]
        assert set(written) == {"index.html", "index.json"}, "no file is copied"
        with static_server(pages, tmp_path / "pages.log") as static:
            target = tmp_path / "target"
            env = client_env(tmp_path)
            installed = pip_install(target, f"{static.url}/simple/", env, "demo-pkg")
        assert installed.returncode == 0, report(installed)
        assert f"/simple/demo-pkg/{WHEEL}.metadata" in files.paths()
        assert f"/simple/demo-pkg/{WHEEL}" in files.paths()
    page = ProjectPage.from_html("demo-pkg", (pages / "simple/demo-pkg/index.html").read_text())
    assert all(p.url.startswith(f"{files.url}/simple/demo-pkg/") for p in page.packages)


@pytest.fixture
def team(tmp_path: Path) -> Path:
    """A config file with a file-system repository ``team`` stored under ``tmp_path/root``."""
    config = tmp_path / "c.toml"
    config.write_text(
        '[team]\ntype = "file_system"\nread_secret = "r-secret"\nwrite_secret = "w-secret"\n'
    )
    return config


def _store(tmp_path: Path, team: Path, *dists: Path, remove: tuple[Path, ...] = ()) -> None:
    """Place ``dists`` in team's storage, remove ``remove``, rebuild the index."""
    storage = tmp_path / "root" / "cache" / "team" / "storage"
    for dist in dists:
        project = dist.name.split("-")[0].replace("_", "-")
        (storage / project).mkdir(parents=True, exist_ok=True)
        (storage / project / dist.name).write_bytes(dist.read_bytes())
    for dist in remove:
        for stored in storage.rglob(f"{dist.name}*"):
            stored.unlink()
    result = run(
        "update_index",
        "file_system",
        "team",
        "--secret",
        "w-secret",
        "--root",
        str(tmp_path / "root"),
        "--config",
        str(team),
    )
    assert result.returncode == 0, result.stderr


def _export_team(tmp_path: Path, team: Path, dest: Path) -> subprocess.CompletedProcess[str]:
    root = str(tmp_path / "root")
    return run("export", "file_system", "team", str(dest), "--config", str(team), "--root", root)


def test_export_again_updates_the_earlier_export_keeping_unchanged_files(
    tmp_path: Path, team: Path
) -> None:
    wheel = make_wheel(tmp_path / "dist", "demo-pkg", "1.0")
    sdist = make_sdist(tmp_path / "dist", "other-pkg", "1.0")
    _store(tmp_path, team, wheel, sdist)
    dest = tmp_path / "site"
    assert _export_team(tmp_path, team, dest).returncode == 0
    site = dest / "simple"
    kept = (site / "demo-pkg" / wheel.name).stat()

    newer = make_wheel(tmp_path / "dist", "demo-pkg", "1.1")
    _store(tmp_path, team, newer, remove=(sdist,))
    result = _export_team(tmp_path, team, dest)
    assert result.returncode == 0, result.stderr

    assert (site / "demo-pkg" / newer.name).read_bytes() == newer.read_bytes()
    assert f'href="{newer.name}#sha256=' in (site / "demo-pkg" / "index.html").read_text()
    assert not (site / "other-pkg").exists()
    assert IndexPage.from_html((site / "index.html").read_text()).projects == ["demo-pkg"]
    unchanged = (site / "demo-pkg" / wheel.name).stat()
    assert (unchanged.st_ino, unchanged.st_mtime_ns) == (kept.st_ino, kept.st_mtime_ns)
    assert not list(dest.rglob("*.tmp"))


def test_export_into_a_folder_holding_something_else_exits_2_and_leaves_it_alone(
    tmp_path: Path, team: Path
) -> None:
    dest = tmp_path / "documents"
    dest.mkdir()
    (dest / "notes.txt").write_text("mine\n")
    result = _export_team(tmp_path, team, dest)
    assert_one_line_error(result, str(dest), "neither empty nor an earlier export")
    assert [p.name for p in dest.iterdir()] == ["notes.txt"]


def test_export_where_nothing_can_be_written_exits_2(tmp_path: Path, team: Path) -> None:
    in_the_way = tmp_path / "a-file"
    in_the_way.write_text("not a folder\n")
    result = _export_team(tmp_path, team, in_the_way / "site")
    assert_one_line_error(result, "cannot write to", str(in_the_way / "site"))


def test_export_of_an_unknown_repository_exits_2(tmp_path: Path, team: Path) -> None:
    result = run("export", "file_system", "nope", str(tmp_path / "site"), "--config", str(team))
    assert_one_line_error(result, "no repository [nope]")
    assert not (tmp_path / "site").exists()
