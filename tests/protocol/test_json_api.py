"""The JSON API in pypi.org's shape: ``/pypi/<project>/json`` and ``/pypi/<project>/<version>/json``
(in process)."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest

from tests.core.helpers import basic_auth
from tests.protocol.dists_extra import core_metadata, make_rich_wheel, make_sdist_with_metadata
from tests.protocol.helpers import UPLOAD_TIME_PATTERN, LocalIndex, local_index, media_type

REQUIRES_DIST = ["requests>=2", 'tomli; python_version < "3.11"', "rich; extra == 'pretty'"]
CLASSIFIERS = ["Programming Language :: Python :: 3", "License :: OSI Approved :: MIT License"]
PROJECT_URLS = {"Homepage": "https://example.invalid/api", "Issues": "https://example.invalid/i"}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> tuple[LocalIndex, dict[str, Path]]:
    """``api-pkg`` 1.0, 2.0 (wheel with full metadata, and a 2.2 sdist), 3.0 (yanked) and
    4.0b1: the latest final release not yanked is 2.0."""
    base = tmp_path_factory.mktemp("json-api")
    site = local_index(base / "root")
    dist = base / "dist"
    rich = core_metadata(
        "Api-Pkg",
        "2.0",
        summary="The second one",
        requires_python=">=3.9",
        requires_dist=REQUIRES_DIST,
        classifiers=CLASSIFIERS,
        project_urls=PROJECT_URLS,
        description="# Api-Pkg\n\nLong words.\n",
    )
    files = {
        "1.0": make_rich_wheel(
            dist,
            "api-pkg",
            "1.0",
            core_metadata("api-pkg", "1.0", summary="old", requires_python=">=3.8"),
        ),
        "2.0": make_rich_wheel(dist, "api-pkg", "2.0", rich),
        "2.0-sdist": make_sdist_with_metadata(
            dist, "api-pkg", "2.0", core_metadata("Api-Pkg", "2.0", metadata_version="2.2")
        ),
        "3.0": make_rich_wheel(dist, "api-pkg", "3.0"),
        "4.0b1": make_rich_wheel(dist, "api-pkg", "4.0b1"),
    }
    site.publish(*files.values())
    yank = site.client.simulate_post(
        "/yank/",
        body=urlencode({"project": "api-pkg", "target": "3.0", "reason": "bad build"}),
        headers={**site.write, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert yank.status_code == 200, yank.text
    return site, files


def get_json(site: LocalIndex, path: str) -> dict[str, Any]:
    result = site.get(path)
    assert result.status_code == 200, f"{path}: {result.status} {result.text}"
    assert media_type(result.headers.get("content-type")) == "application/json"
    document: dict[str, Any] = json.loads(result.text)
    return document


def test_info_describes_the_latest_final_release_not_yanked_from_its_metadata(
    api: tuple[LocalIndex, dict[str, Path]],
) -> None:
    site, _ = api
    info = get_json(site, "/pypi/api-pkg/json")["info"]
    assert info["name"] == "Api-Pkg"
    assert info["version"] == "2.0"
    assert info["summary"] == "The second one"
    assert info["requires_python"] == ">=3.9"
    assert info["requires_dist"] == REQUIRES_DIST
    assert info["classifiers"] == CLASSIFIERS
    assert info["project_urls"] == PROJECT_URLS
    assert "Long words." in info["description"]
    assert info["description_content_type"] == "text/markdown"
    assert info["yanked"] is False
    assert info["yanked_reason"] is None


def test_releases_list_every_version_with_its_files(
    api: tuple[LocalIndex, dict[str, Path]],
) -> None:
    site, files = api
    releases = get_json(site, "/pypi/api-pkg/json")["releases"]
    assert set(releases) == {"1.0", "2.0", "3.0", "4.0b1"}
    assert {f["filename"] for f in releases["2.0"]} == {files["2.0"].name, files["2.0-sdist"].name}
    assert [(f["yanked"], f["yanked_reason"]) for f in releases["3.0"]] == [(True, "bad build")]
    assert all(not f["yanked"] and f["yanked_reason"] is None for f in releases["1.0"])


def test_urls_carry_every_digest_of_the_file_and_download_it(
    api: tuple[LocalIndex, dict[str, Path]],
) -> None:
    site, files = api
    urls = get_json(site, "/pypi/api-pkg/json")["urls"]
    by_name = {f["filename"]: f for f in urls}
    assert set(by_name) == {files["2.0"].name, files["2.0-sdist"].name}
    for path in (files["2.0"], files["2.0-sdist"]):
        data = path.read_bytes()
        file = by_name[path.name]
        assert file["digests"] == {
            "sha256": hashlib.sha256(data).hexdigest(),
            "md5": hashlib.md5(data, usedforsecurity=False).hexdigest(),
            "blake2b_256": hashlib.blake2b(data, digest_size=32).hexdigest(),
        }
        assert file["md5_digest"] == file["digests"]["md5"]
        assert file["size"] == len(data)
        assert re.fullmatch(UPLOAD_TIME_PATTERN, file["upload_time_iso_8601"])
        download = site.get(urlsplit(file["url"]).path)
        assert download.status_code == 200 and download.content == data, file["url"]
    assert by_name[files["2.0"].name]["packagetype"] == "bdist_wheel"
    assert by_name[files["2.0-sdist"].name]["packagetype"] == "sdist"
    assert by_name[files["2.0"].name]["requires_python"] == ">=3.9"


@pytest.mark.parametrize(
    ("version", "summary", "requires_python"),
    [("1.0", "old", ">=3.8"), ("2.0", "The second one", ">=3.9")],
)
def test_the_version_endpoint_describes_that_version(
    api: tuple[LocalIndex, dict[str, Path]], version: str, summary: str, requires_python: str
) -> None:
    site, files = api
    document = get_json(site, f"/pypi/api-pkg/{version}/json")
    assert document["info"]["version"] == version
    assert document["info"]["summary"] == summary
    assert document["info"]["requires_python"] == requires_python
    assert {f["filename"] for f in document["urls"]} >= {files[version].name}


def test_a_yanked_version_says_so_with_its_reason(api: tuple[LocalIndex, dict[str, Path]]) -> None:
    site, _ = api
    document = get_json(site, "/pypi/api-pkg/3.0/json")
    assert document["info"]["yanked"] is True
    assert document["info"]["yanked_reason"] == "bad build"
    assert [(f["yanked"], f["yanked_reason"]) for f in document["urls"]] == [(True, "bad build")]


def test_a_prerelease_is_reachable_by_its_version(api: tuple[LocalIndex, dict[str, Path]]) -> None:
    site, _ = api
    assert get_json(site, "/pypi/api-pkg/4.0b1/json")["info"]["version"] == "4.0b1"


def test_the_project_name_may_be_spelled_unnormalised(
    api: tuple[LocalIndex, dict[str, Path]],
) -> None:
    site, _ = api
    result = site.get("/pypi/API_Pkg/json")
    if result.status_code in (301, 302, 307, 308):
        result = site.get(urlsplit(result.headers["location"]).path)
    assert result.status_code == 200, result.text
    assert json.loads(result.text)["info"]["version"] == "2.0"


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        ("/pypi/no-such-project/json", "no-such-project"),
        ("/pypi/no-such-project/1.0/json", "no-such-project"),
        ("/pypi/api-pkg/9.9/json", "9.9"),
        ("/pypi/api-pkg/not-a-version/json", "not-a-version"),
    ],
)
def test_an_unknown_project_or_version_is_404_saying_which(
    api: tuple[LocalIndex, dict[str, Path]], path: str, fragment: str
) -> None:
    site, _ = api
    result = site.get(path)
    assert result.status_code == 404, result.text
    assert fragment in result.text


@pytest.mark.parametrize("path", ["/pypi/api-pkg/json", "/pypi/api-pkg/2.0/json"])
@pytest.mark.parametrize("credential", ["none", "wrong"])
def test_the_json_api_needs_credentials(
    api: tuple[LocalIndex, dict[str, Path]], path: str, credential: str
) -> None:
    site, _ = api
    headers = {} if credential == "none" else basic_auth("local", "not-the-secret")
    result = site.client.simulate_get(path, headers=headers)
    assert result.status_code == 401, result.text
    assert '"info"' not in result.text
    assert result.headers.get("www-authenticate", "").startswith("Basic")
