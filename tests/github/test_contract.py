"""The contract: GitHub's REST description in githubkit-schemas-2022-11-28.

Every test that uses the emulator already fails on a violation (an undocumented endpoint, a
request body or answer that does not validate against the endpoint's model). These tests make
sure that check covers every endpoint the emulator serves, that it is not vacuous, that the
plugin's API surface is what the README says, and that the emulator applies what the endpoint
docs say.
"""

from __future__ import annotations

import dataclasses

import pytest
import requests

from private_pypi_core.dists import parse_dist_filename
from private_pypi_core.repository import Repository
from tests.github import contract
from tests.github.conftest import FULL_NAME, OWNER, Scene
from tests.github.emulator_endpoints import API_ROUTES, UPLOAD_ROUTES
from tests.github.test_commands import gen_gh_pages, init, run_cli

# The plugin's whole use of GitHub's REST API (besides the hypermedia URLs it is handed).
PLUGIN_ENDPOINTS = {
    ("GET", "/user"),
    ("POST", "/user/repos"),
    ("POST", "/orgs/{org}/repos"),
    ("GET", "/repos/{owner}/{repo}"),
    ("GET", "/repos/{owner}/{repo}/releases"),
    ("POST", "/repos/{owner}/{repo}/releases"),
    ("GET", "/repos/{owner}/{repo}/releases/tags/{tag}"),
    ("GET", "/repos/{owner}/{repo}/releases/{release_id}/assets"),
    ("POST", "/repos/{owner}/{repo}/releases/{release_id}/assets"),
    ("GET", "/repos/{owner}/{repo}/releases/assets/{asset_id}"),
    ("DELETE", "/repos/{owner}/{repo}/releases/assets/{asset_id}"),
    ("GET", "/repos/{owner}/{repo}/contents/{path}"),
    ("PUT", "/repos/{owner}/{repo}/contents/{path}"),
    ("GET", "/repos/{owner}/{repo}/git/blobs/{file_sha}"),
    ("GET", "/repos/{owner}/{repo}/git/ref/{ref}"),
    ("POST", "/repos/{owner}/{repo}/git/refs"),
    ("PATCH", "/repos/{owner}/{repo}/git/refs/{ref}"),
    ("POST", "/repos/{owner}/{repo}/git/trees"),
    ("GET", "/repos/{owner}/{repo}/git/commits/{commit_sha}"),
    ("POST", "/repos/{owner}/{repo}/git/commits"),
    ("POST", "/repos/{owner}/{repo}/pages"),
    ("GET", "/repos/{owner}/{repo}/pages"),
}


def drive_everything(scene: Scene, temp: pytest.TempPathFactory) -> None:
    """Every feature of the plugin, against one emulated GitHub."""
    emulator = scene.emulator
    emulator.orgs["widgets"] = {OWNER}
    assert init(emulator, scene.writer, "--enable_gh_pages", repo="new")[0] == 0
    assert init(emulator, scene.writer, "--enable_gh_pages", repo="new")[0] == 0  # pages: 409
    assert (
        run_cli(
            "github.init_pkg_repo",
            "--name=org",
            "--owner=widgets",
            "--repo=pkgs",
            f"--api_url={emulator.api_url}",
            f"--token={scene.writer}",
        )[0]
        == 0
    )
    backend = scene.backend()
    for token in (scene.writer, scene.reader, scene.stranger):
        backend.token_access(token)
    emulator.interrupt_next_upload()
    dist = parse_dist_filename("demo-1.0.tar.gz")
    path = temp.mktemp("src") / dist.filename
    path.write_bytes(b"sdist")
    backend.write_file(dist, path)
    release = backend.releases.by_tag("demo-1.0")
    assert release is not None
    wide = dataclasses.replace(release, assets=release.assets * 100)
    backend.releases.assets(wide)  # a release with 100 assets or more: the assets endpoint
    list(backend.list_files())
    with backend.open_file(dist) as stream:
        stream.read()
    Repository(backend.config, scene.root).rebuild_index()
    big_index = scene.backend(index_filename="big.json")
    big_index.write_index(b"x" * (1 << 20) + b"more", replaces=None)
    big_index.read_index()
    emulator.repo(FULL_NAME).private = False
    assert gen_gh_pages(scene)[0] == 0
    backend.delete_file(dist)
    assert gen_gh_pages(scene)[0] == 0  # the file is gone: the branch moves on
    requests.get(f"{emulator.api_url}/rate_limit", timeout=5)


def test_every_emulated_endpoint_is_exercised_and_the_plugin_calls_only_documented_ones(
    scene: Scene, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """...and the emulator fixture fails the test if any exchange broke the contract."""
    drive_everything(scene, tmp_path_factory)
    answered = {call.route for call in scene.emulator.calls}
    served = {handler.__name__ for _, _, handler in API_ROUTES + UPLOAD_ROUTES}
    assert served - answered == set()

    used = set()
    for call in scene.emulator.api_calls():
        endpoint = contract.endpoint_for(call.method, call.path)
        assert endpoint is not None, f"{call.method} {call.path} is not in GitHub's description"
        used.add((endpoint.method, endpoint.template))
    assert used - {("GET", "/rate_limit")} == PLUGIN_ENDPOINTS


def test_contract_check_is_not_vacuous() -> None:
    release = contract.endpoint_for("GET", "/repos/o/r/releases/tags/v1")
    assert release is not None and release.response_model == "Release"
    assert contract.check_response(release, 200, {"id": 1, "tag_name": "v1"})
    assert contract.check_response(release, 404, {"message": "Not Found"}) is None
    create = contract.endpoint_for("POST", "/repos/o/r/releases")
    assert create is not None and contract.check_request_body(create, {"name": "no tag"})
    assert contract.endpoint_for("GET", "/repos/o/r/releases/by-name/v1") is None


def test_asset_names_with_special_characters_are_renamed_as_github_documents(
    scene: Scene,
) -> None:
    backend = scene.backend()
    release = backend.releases.create("demo-1.0", "demo 1.0")
    upload = release.upload_url.split("{")[0]
    headers = {"Authorization": f"Bearer {scene.writer}", "Content-Type": "text/plain"}
    names = []
    for name in ["demo-1.0+local.tar.gz", ".hidden", "ends."]:
        answer = requests.post(upload, params={"name": name}, data=b"x", headers=headers, timeout=5)
        assert answer.status_code == 201
        names.append(answer.json()["name"])
    assert names == ["demo-1.0.local.tar.gz", "default.hidden", "ends"]
    again = requests.post(
        upload, params={"name": "demo-1.0+local.tar.gz"}, data=b"y", headers=headers, timeout=5
    )
    assert again.status_code == 422
    assert again.json()["errors"][0]["code"] == "already_exists"


def test_rate_limit_overview_counts_requests_and_costs_none(scene: Scene) -> None:
    headers = {"Authorization": f"Bearer {scene.writer}"}
    url = f"{scene.emulator.api_url}/rate_limit"
    requests.get(f"{scene.emulator.api_url}/repos/{FULL_NAME}", headers=headers, timeout=5)
    first = requests.get(url, headers=headers, timeout=5).json()["rate"]
    second = requests.get(url, headers=headers, timeout=5).json()["rate"]
    assert first["used"] == second["used"] == 1
    assert first["remaining"] == first["limit"] - 1
