"""``github.init_pkg_repo`` and ``github.gen_gh_pages`` against the emulated GitHub, and the
workflow that init commits, run as GitHub Actions would run it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tomllib
from html.parser import HTMLParser
from pathlib import Path

import pytest
import requests
import typer
from typer.testing import CliRunner

from private_pypi_core.dists import parse_dist_filename
from private_pypi_core.index import PackageIndex
from private_pypi_core.index_store import ShardCache, read_remote
from private_pypi_github import plugin
from private_pypi_github.naming import asset_name
from private_pypi_github.pages import PAGES_BRANCH
from private_pypi_github.workflow import TOKEN_SECRET, WORKFLOW_PATH
from tests.github.conftest import FULL_NAME, OWNER, REPO, Scene
from tests.github.emulator import Emulator
from tests.server import private_pypi_command


def run_cli(*args: str) -> tuple[int, str, str]:
    """A command of the plugin, in process; (exit code, stdout, stderr)."""
    app = typer.Typer()
    plugin.private_pypi_commands(app=app)
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def init(emulator: Emulator, token: str, *extra: str, repo: str = "pkgs") -> tuple[int, str, str]:
    return run_cli(
        "github.init_pkg_repo",
        "--name=team",
        f"--owner={OWNER}",
        f"--repo={repo}",
        f"--api_url={emulator.api_url}",
        f"--token={token}",
        *extra,
    )


def test_init_creates_a_private_repository_with_index_and_workflow(emulator: Emulator) -> None:
    token = emulator.add_token(OWNER)
    code, stdout, stderr = init(emulator, token)
    assert code == 0, stderr
    repo = emulator.repo(f"{OWNER}/pkgs")
    assert repo.private
    files = emulator.files(repo.full_name)
    assert files["index.json"] == PackageIndex().to_bytes()
    assert "private_pypi update_index github team" in files[WORKFLOW_PATH].decode()
    assert tomllib.loads(stdout) == {
        "team": {
            "type": "github",
            "owner": OWNER,
            "repo": "pkgs",
            "api_url": emulator.api_url,
            "token_env": TOKEN_SECRET,
        }
    }
    assert f'env = "{TOKEN_SECRET}"' in stderr
    assert token not in stdout + stderr


def test_init_twice_changes_nothing(emulator: Emulator) -> None:
    token = emulator.add_token(OWNER)
    assert init(emulator, token)[0] == 0
    commits = len(emulator.commits)
    code, stdout, _ = init(emulator, token)
    assert code == 0 and "type" in stdout
    assert len(emulator.commits) == commits


def test_init_creates_the_repository_in_an_organisation(emulator: Emulator) -> None:
    emulator.orgs["widgets"] = {OWNER}
    code, _, stderr = run_cli(
        "github.init_pkg_repo",
        "--name=team",
        "--owner=widgets",
        "--repo=pkgs",
        f"--api_url={emulator.api_url}",
        f"--token={emulator.add_token(OWNER)}",
    )
    assert code == 0, stderr
    assert "index.json" in emulator.files("widgets/pkgs")


def test_init_on_an_existing_repository_with_an_index_branch_of_its_own(scene: Scene) -> None:
    code, stdout, stderr = init(scene.emulator, scene.writer, "--branch=index", repo=REPO)
    assert code == 0, stderr
    assert "index.json" in scene.emulator.files(FULL_NAME, "index")
    assert WORKFLOW_PATH in scene.emulator.files(FULL_NAME, "main")
    assert tomllib.loads(stdout)["team"]["branch"] == "index"


def test_init_fills_an_existing_empty_repository(emulator: Emulator) -> None:
    emulator.add_repo(OWNER, "bare", initialized=False)
    code, _, stderr = init(emulator, emulator.add_token(OWNER), "--branch=index", repo="bare")
    assert code == 0, stderr
    assert WORKFLOW_PATH in emulator.files(f"{OWNER}/bare", "main")
    assert "index.json" in emulator.files(f"{OWNER}/bare", "index")


def test_init_refuses_a_token_that_may_only_read(scene: Scene) -> None:
    code, _, stderr = init(scene.emulator, scene.reader, repo=REPO)
    assert code == 2
    assert "may not write to acme/packages" in stderr
    assert scene.reader not in stderr


def test_init_without_a_token_says_how_to_give_one(emulator: Emulator) -> None:
    code, _, stderr = run_cli(
        "github.init_pkg_repo", "--name=team", f"--owner={OWNER}", "--repo=pkgs"
    )
    assert code == 2 and "--token" in stderr


def test_workflow_written_by_init_rebuilds_the_index_with_the_real_cli(
    scene: Scene, tmp_path: Path
) -> None:
    """The workflow's update_index command, as Actions runs it, indexes a hand upload."""
    assert init(scene.emulator, scene.writer, repo=REPO)[0] == 0
    backend = scene.backend()
    wheel = tmp_path / "demo-1.0-py3-none-any.whl"
    wheel.write_bytes(b"not really a wheel")
    release = backend.releases.create("demo-1.0", "demo 1.0")
    backend.releases.upload(release, wheel, wheel.name)  # as a hand upload would be

    text = scene.emulator.files(FULL_NAME)[WORKFLOW_PATH].decode()
    assert "pip install private-pypi-core private-pypi-github" in text
    [command] = re.findall(r"^ +(private_pypi update_index .*)$", text, re.MULTILINE)
    command = command.replace("${{ github.api_url }}", scene.emulator.api_url)
    private_pypi = " ".join(private_pypi_command())
    result = subprocess.run(
        command.replace("private_pypi", private_pypi, 1),
        shell=True,
        cwd=tmp_path,
        env={**os.environ, TOKEN_SECRET: scene.writer},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "Indexed 1 files" in result.stdout
    index = read_remote(backend, ShardCache(), label="index").index
    assert list(index.entries) == [wheel.name]


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[dict[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.links.append({name: value or "" for name, value in attrs})


def _links(html: bytes) -> list[dict[str, str]]:
    parser = _Links()
    parser.feed(html.decode())
    return parser.links


@pytest.fixture
def published(scene: Scene, tmp_path: Path) -> Scene:
    """A public package repository with an indexed wheel (and its core metadata) and sdist."""
    from private_pypi_core.repository import Repository

    scene.emulator.repo(FULL_NAME).private = False
    backend = scene.backend()
    for filename, data in [("demo-1.0+abc-py3-none-any.whl", b"w"), ("demo-1.0.tar.gz", b"s")]:
        path = tmp_path / filename
        path.write_bytes(data)
        backend.write_file(parse_dist_filename(filename), path)
    metadata = tmp_path / "meta"
    metadata.write_bytes(b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0+abc\n")
    wheel = parse_dist_filename("demo-1.0+abc-py3-none-any.whl")
    backend.write_file(wheel.companion(".metadata"), metadata)
    Repository(backend.config, tmp_path / "root").rebuild_index()
    return scene


def gen_gh_pages(scene: Scene) -> tuple[int, str, str]:
    return run_cli(
        "github.gen_gh_pages",
        f"--owner={OWNER}",
        f"--repo={REPO}",
        f"--api_url={scene.emulator.api_url}",
        f"--token={scene.writer}",
    )


def test_gh_pages_site_links_every_file_to_its_download(published: Scene) -> None:
    code, _, stderr = gen_gh_pages(published)
    assert code == 0, stderr
    site = published.emulator.files(FULL_NAME, PAGES_BRANCH)
    assert sorted(site) == [
        ".nojekyll",
        "demo/index.html",
        "demo/index.json",
        "index.html",
        "index.json",
    ]
    assert [link["href"] for link in _links(site["index.html"])] == ["demo/"]
    links = {link["href"].split("#")[0]: link for link in _links(site["demo/index.html"])}
    index = read_remote(published.backend(), ShardCache(), label="index").index
    by_asset_name = {asset_name(e.filename): e for e in index.entries.values()}
    assert len(links) == len(by_asset_name) == 2
    for url, link in links.items():
        entry = by_asset_name[url.rsplit("/", 1)[-1]]
        assert link["href"] == f"{url}#sha256={entry.sha256}"
        assert requests.get(url, timeout=5).content in (b"w", b"s")
    wheel_link = next(link for url, link in links.items() if url.endswith(".whl"))
    assert wheel_link["data-core-metadata"], "its metadata asset is served beside it"
    assert requests.get(wheel_link["href"].split("#")[0] + ".metadata", timeout=5).ok
    files = json.loads(site["demo/index.json"])["files"]
    assert {file["url"]: bool(file["core-metadata"]) for file in files} == {
        url: "data-core-metadata" in link for url, link in links.items()
    }


def test_gh_pages_site_is_committed_only_when_it_changes(published: Scene) -> None:
    assert gen_gh_pages(published)[0] == 0
    head = published.emulator.repo(FULL_NAME).branches[PAGES_BRANCH]
    code, stdout, _ = gen_gh_pages(published)
    assert code == 0 and "already holds" in stdout
    assert published.emulator.repo(FULL_NAME).branches[PAGES_BRANCH] == head


def test_init_with_gh_pages_enables_pages_on_its_branch(emulator: Emulator) -> None:
    code, _, stderr = init(emulator, emulator.add_token(OWNER), "--enable_gh_pages")
    assert code == 0, stderr
    repo = emulator.repo(f"{OWNER}/pkgs")
    assert repo.pages == {"branch": PAGES_BRANCH, "path": "/"}
    assert "index.html" in emulator.files(repo.full_name, PAGES_BRANCH)
    assert "github.gen_gh_pages" in emulator.files(repo.full_name)[WORKFLOW_PATH].decode()
    assert init(emulator, emulator.add_token(OWNER), "--enable_gh_pages")[0] == 0
