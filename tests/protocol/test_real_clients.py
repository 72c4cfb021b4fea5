"""uv, pip and the pypi-simple library against a real server: resolution from the JSON pages and
the ``.metadata`` files alone (the access log shows that no wheel is downloaded), and what a
client library reads from both page formats."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from packaging.version import Version
from pypi_simple import ACCEPT_HTML_ONLY, ACCEPT_JSON_ONLY, PyPISimple

from tests.e2e.clients import client_env, executable, pip_command, report, run, twine_upload
from tests.protocol.dists_extra import core_metadata, make_rich_wheel
from tests.protocol.helpers import (
    JSON_V1,
    AccessLog,
    RecordingProxy,
    media_type,
    sha256_hex,
    wheel_downloads,
)
from tests.server import RunningServer, start_server

pytestmark = pytest.mark.e2e

RESOLVED = {"app-top": "1.0", "lib-mid": "1.0", "lib-base": "1.0"}


@dataclass
class Published:
    server: RunningServer
    log: AccessLog
    files: dict[str, Path]

    def index_url(self, base: str | None = None) -> str:
        """The simple index URL with the read secret, on the server or on ``base``."""
        host = (base or self.server.url).removeprefix("http://")
        return f"http://local:{self.server.secret()}@{host}/simple/"


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Published]:
    """A server with an access log, and with twine: app-top 1.0 -> lib-mid>=1.0 -> lib-base;
    lib-mid 2.0 needs Python >= 4, so every resolver must settle on lib-mid 1.0; old-lib is
    yanked."""
    base = tmp_path_factory.mktemp("real-clients")
    access_log = base / "access.log"
    server = start_server(base / "root", "--extra_index_url=", f"--accesslog={access_log}")
    try:
        dist = base / "dist"
        metadata = {
            "app-top": core_metadata(
                "app-top", "1.0", requires_python="<4,>=3.8", requires_dist=["lib-mid>=1.0"]
            ),
            "lib-mid-1": core_metadata("lib-mid", "1.0", requires_dist=["lib-base"]),
            "lib-mid-2": core_metadata(
                "lib-mid", "2.0", requires_python=">=4", requires_dist=["lib-base"]
            ),
            "lib-base": core_metadata("lib-base", "1.0", summary="the base"),
            "old-lib": core_metadata("old-lib", "0.1"),
        }
        files = {
            "app-top": make_rich_wheel(dist, "app-top", "1.0", metadata["app-top"]),
            "lib-mid-1": make_rich_wheel(dist, "lib-mid", "1.0", metadata["lib-mid-1"]),
            "lib-mid-2": make_rich_wheel(dist, "lib-mid", "2.0", metadata["lib-mid-2"]),
            "lib-base": make_rich_wheel(dist, "lib-base", "1.0", metadata["lib-base"]),
            "old-lib": make_rich_wheel(dist, "old-lib", "0.1", metadata["old-lib"]),
        }
        env = client_env(base)
        upload = twine_upload(server, list(files.values()), server.secret("local", "write"), env)
        assert upload.returncode == 0, report(upload)
        yank = requests.post(
            f"{server.url}/yank/",
            data={"project": "old-lib", "target": "0.1", "reason": "use lib-base"},
            auth=("local", server.secret("local", "write")),
            timeout=10,
        )
        assert yank.status_code == 200, yank.text
        yield Published(server, AccessLog(access_log, server), files)
    finally:
        server.stop()


def _uv_compile(index_url: str, tmp_path: Path, env: dict[str, str]) -> str:
    """``uv pip compile`` of ``app-top``: the pinned requirements it prints."""
    requirements = tmp_path / "requirements.in"
    requirements.write_text("app-top\n")
    result = run(
        [
            executable("uv"),
            "pip",
            "compile",
            "--no-config",
            "--no-progress",
            "--no-header",
            "--python",
            sys.executable,
            "--index-url",
            index_url,
            str(requirements),
        ],
        env,
    )
    assert result.returncode == 0, report(result)
    return result.stdout


def _pins(compiled: str) -> dict[str, str]:
    pins = {}
    for line in compiled.splitlines():
        if "==" in line and not line.lstrip().startswith("#"):
            name, _, version = line.strip().partition("==")
            pins[name] = version
    return pins


def test_uv_pip_compile_resolves_from_metadata_files_without_downloading_a_wheel(
    published: Published, tmp_path: Path
) -> None:
    published.log.mark()
    compiled = _uv_compile(published.index_url(), tmp_path, client_env(tmp_path))
    assert _pins(compiled) == RESOLVED, compiled
    logged = published.log.since_mark()
    assert wheel_downloads(logged) == [], logged
    for key in ("app-top", "lib-mid-1", "lib-base"):
        name = published.files[key].name
        assert any(line.endswith(f"/{name}.metadata") for line in logged), (name, logged)
    assert all(line.startswith("GET /simple/") for line in logged), logged


def test_pip_install_dry_run_report_resolves_without_downloading_a_wheel(
    published: Published, tmp_path: Path
) -> None:
    env = client_env(tmp_path)
    pip_version = run(pip_command("--version"), env).stdout.split()[1]
    assert Version(pip_version) >= Version("23"), pip_version
    report_path = tmp_path / "report.json"
    published.log.mark()
    result = run(
        pip_command(
            "install",
            "--no-cache-dir",
            "--dry-run",
            "--ignore-installed",
            "--report",
            str(report_path),
            "--index-url",
            published.index_url(),
            "app-top",
        ),
        env,
    )
    assert result.returncode == 0, report(result)
    installed = json.loads(report_path.read_text())["install"]
    assert {i["metadata"]["name"]: i["metadata"]["version"] for i in installed} == RESOLVED
    wheels = {"app-top": "app-top", "lib-mid": "lib-mid-1", "lib-base": "lib-base"}
    for item in installed:
        wheel = published.files[wheels[item["metadata"]["name"]]]
        assert item["download_info"]["url"].endswith(f"/{wheel.name}")
        assert item["download_info"]["archive_info"]["hashes"] == {
            "sha256": sha256_hex(wheel.read_bytes())
        }
    logged = published.log.since_mark()
    assert wheel_downloads(logged) == [], logged
    assert sum(line.endswith(".whl.metadata") for line in logged) == 3, logged


@pytest.mark.parametrize("client", ["uv", "pip"])
def test_uv_and_pip_ask_for_json_pages_and_get_them(
    published: Published, tmp_path: Path, client: str
) -> None:
    """Seen through a recording proxy: the access log cannot show headers."""
    proxy = RecordingProxy(published.server.url)
    try:
        env = client_env(tmp_path)
        if client == "uv":
            compiled = _uv_compile(published.index_url(proxy.url), tmp_path, env)
            assert _pins(compiled) == RESOLVED
        else:
            result = run(
                pip_command(
                    "install",
                    "--no-cache-dir",
                    "--dry-run",
                    "--ignore-installed",
                    "--index-url",
                    published.index_url(proxy.url),
                    "app-top",
                ),
                env,
            )
            assert result.returncode == 0, report(result)
    finally:
        proxy.stop()
    pages = [r for r in proxy.recorded if r.path.endswith("/") and r.status == 200]
    assert {r.path for r in pages} >= {f"/simple/{p}/" for p in RESOLVED}, proxy.recorded
    for page in pages:
        assert JSON_V1 in (page.accept or ""), page
        assert media_type(page.content_type) == JSON_V1, page
    assert not [r for r in proxy.recorded if r.path.endswith(".whl")], proxy.recorded


@pytest.fixture
def pypi_simple_client(published: Published) -> Iterator[PyPISimple]:
    with PyPISimple(
        published.server.simple_url, auth=("local", published.server.secret())
    ) as client:
        yield client


@pytest.mark.parametrize("accept", [ACCEPT_JSON_ONLY, ACCEPT_HTML_ONLY], ids=["json", "html"])
def test_pypi_simple_reads_hashes_requires_python_yanks_and_metadata_digests(
    published: Published, pypi_simple_client: PyPISimple, accept: str
) -> None:
    files = published.files
    for project, keys in {
        "lib-mid": ["lib-mid-1", "lib-mid-2"],
        "app-top": ["app-top"],
        "old-lib": ["old-lib"],
    }.items():
        page = pypi_simple_client.get_project_page(project, accept=accept)
        assert page.repository_version == "1.4"
        packages = {package.filename: package for package in page.packages}
        assert set(packages) == {files[key].name for key in keys}
        for key in keys:
            package = packages[files[key].name]
            assert package.digests == {"sha256": sha256_hex(files[key].read_bytes())}
            assert package.has_metadata is True
            metadata = pypi_simple_client.get_package_metadata(package)  # checks the digest
            assert metadata.startswith("Metadata-Version: 2.1\n")
            assert package.metadata_digests == {"sha256": sha256_hex(metadata.encode())}
    lib_mid = pypi_simple_client.get_project_page("lib-mid", accept=accept)
    requires = {p.version: p.requires_python for p in lib_mid.packages}
    assert requires == {"1.0": None, "2.0": ">=4"}
    app_top = pypi_simple_client.get_project_page("app-top", accept=accept).packages[0]
    assert app_top.requires_python == "<4,>=3.8"
    assert app_top.is_yanked is False
    old = pypi_simple_client.get_project_page("old-lib", accept=accept).packages[0]
    assert (old.is_yanked, old.yanked_reason) == (True, "use lib-base")


def test_pypi_simple_reads_pep_700_fields_from_json(
    published: Published, pypi_simple_client: PyPISimple
) -> None:
    page = pypi_simple_client.get_project_page("lib-mid", accept=ACCEPT_JSON_ONLY)
    assert page.versions == ["1.0", "2.0"]
    wheels = {published.files[key].name: published.files[key] for key in ("lib-mid-1", "lib-mid-2")}
    assert {package.filename for package in page.packages} == set(wheels)
    for package in page.packages:
        assert package.size == len(wheels[package.filename].read_bytes())
        assert package.upload_time is not None
        assert package.upload_time.utcoffset() is not None  # PEP 700: UTC, with "Z"


@pytest.mark.parametrize("accept", [ACCEPT_JSON_ONLY, ACCEPT_HTML_ONLY], ids=["json", "html"])
def test_pypi_simple_reads_the_project_list(pypi_simple_client: PyPISimple, accept: str) -> None:
    page = pypi_simple_client.get_index_page(accept=accept)
    assert page.repository_version == "1.4"
    assert set(page.projects) == {"app-top", "lib-base", "lib-mid", "old-lib"}
