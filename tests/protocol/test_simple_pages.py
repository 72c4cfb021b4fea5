"""The simple pages' content: PEP 691 JSON, PEP 700 fields, PEP 658/714 core metadata in both
formats, and the ``.metadata`` files they advertise (in process)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest

from tests.dists import make_sdist
from tests.protocol.dists_extra import core_metadata, make_rich_wheel, make_sdist_with_metadata
from tests.protocol.helpers import (
    HTML_LEGACY,
    HTML_V1,
    JSON_V1,
    UPLOAD_TIME_PATTERN,
    LocalIndex,
    absolute,
    json_keys,
    local_index,
    media_type,
    parse_html,
    sha256_hex,
)

PROJECT_URL = "/simple/rich-pkg/"


@pytest.fixture(scope="module")
def rich(tmp_path_factory: pytest.TempPathFactory) -> tuple[LocalIndex, dict[str, Path]]:
    """``rich-pkg`` with wheels (one with a local version and a ``<`` in Requires-Python),
    a Metadata-Version 2.2 sdist and a 2.1 sdist, plus project ``other``."""
    base = tmp_path_factory.mktemp("rich")
    site = local_index(base / "root")
    dist = base / "dist"
    files = {
        "wheel-1.10": make_rich_wheel(
            dist,
            "Rich_Pkg",
            "1.10",
            core_metadata("Rich_Pkg", "1.10", requires_python="<4,>=3.8", summary="ten"),
        ),
        "wheel-1.2": make_rich_wheel(dist, "rich-pkg", "1.2"),
        "wheel-1.9+local": make_rich_wheel(dist, "rich-pkg", "1.9+local"),
        "wheel-2.0rc1": make_rich_wheel(dist, "rich-pkg", "2.0rc1"),
        "sdist-1.10": make_sdist_with_metadata(
            dist,
            "Rich_Pkg",
            "1.10",
            core_metadata("Rich_Pkg", "1.10", metadata_version="2.2", requires_python=">=3.8"),
        ),
        "sdist-1.2": make_sdist(dist, "rich-pkg", "1.2"),  # Metadata-Version 2.1
    }
    site.publish(*files.values(), make_rich_wheel(dist, "other", "0.1"))
    return site, files


def project_json(site: LocalIndex) -> dict[str, Any]:
    result = site.get(PROJECT_URL, JSON_V1)
    assert result.status_code == 200, result.text
    assert media_type(result.headers["content-type"]) == JSON_V1
    document: dict[str, Any] = json.loads(result.text)
    return document


def test_the_json_root_lists_every_project_by_name(
    rich: tuple[LocalIndex, dict[str, Path]],
) -> None:
    site, _ = rich
    result = site.get("/simple/", JSON_V1)
    assert media_type(result.headers["content-type"]) == JSON_V1
    assert json.loads(result.text) == {
        "meta": {"api-version": "1.4"},
        "projects": [{"name": "other"}, {"name": "rich-pkg"}],
    }


def test_the_json_project_page_has_every_pep_691_and_700_field_for_every_file(
    rich: tuple[LocalIndex, dict[str, Path]],
) -> None:
    site, files = rich
    page = project_json(site)
    assert page["meta"] == {"api-version": "1.4"}
    assert page["name"] == "rich-pkg"
    by_name = {file["filename"]: file for file in page["files"]}
    assert set(by_name) == {path.name for path in files.values()}
    for path in files.values():
        file = by_name[path.name]
        data = path.read_bytes()
        download = site.client.simulate_get(urljoin(PROJECT_URL, file["url"]), headers=site.read)
        assert download.content == data, file["url"]
        assert file["hashes"] == {"sha256": sha256_hex(data)}
        assert file["size"] == len(data)
        assert re.fullmatch(UPLOAD_TIME_PATTERN, file["upload-time"]), file["upload-time"]
        assert file["yanked"] is False
        assert "core-metadata" in file
    assert by_name[files["wheel-1.10"].name]["requires-python"] == "<4,>=3.8"
    assert by_name[files["sdist-1.10"].name]["requires-python"] == ">=3.8"
    assert "requires-python" not in by_name[files["wheel-1.2"].name]


def test_the_json_page_lists_versions_sorted_as_versions(
    rich: tuple[LocalIndex, dict[str, Path]],
) -> None:
    site, _ = rich
    assert project_json(site)["versions"] == ["1.2", "1.9+local", "1.10", "2.0rc1"]


def test_no_json_page_ever_says_dist_info_metadata(
    rich: tuple[LocalIndex, dict[str, Path]],
) -> None:
    """PEP 714: that key makes some pip versions crash on a bad hash; only core-metadata."""
    site, _ = rich
    for path in ("/simple/", PROJECT_URL, "/simple/other/"):
        document = json.loads(site.get(path, JSON_V1).text)
        assert "dist-info-metadata" not in set(json_keys(document)), path


def test_html_advertises_both_metadata_attributes_with_the_sha256_of_the_served_file(
    rich: tuple[LocalIndex, dict[str, Path]],
) -> None:
    site, files = rich
    for accept in (HTML_LEGACY, HTML_V1):
        text = site.get(PROJECT_URL, accept).text
        page = parse_html(text)
        assert page.meta_values("pypi:repository-version") == ["1.4"]
        for key in ("wheel-1.10", "wheel-1.9+local", "sdist-1.10"):
            anchor = page.anchors[files[key].name]
            served = site.client.simulate_get(
                absolute(PROJECT_URL, anchor.href) + ".metadata", headers=site.read
            )
            assert served.status_code == 200, (key, served.text)
            expected = f"sha256={sha256_hex(served.content)}"
            assert anchor.attributes["data-core-metadata"] == expected, key
            assert anchor.attributes["data-dist-info-metadata"] == expected, key
            assert anchor.sha256 == sha256_hex(files[key].read_bytes())


def test_requires_python_is_html_escaped_and_reads_back_exactly(
    rich: tuple[LocalIndex, dict[str, Path]],
) -> None:
    site, files = rich
    text = site.get(PROJECT_URL).text
    assert 'data-requires-python="&lt;4,&gt;=3.8"' in text
    anchor = parse_html(text).anchors[files["wheel-1.10"].name]
    assert anchor.attributes["data-requires-python"] == "<4,>=3.8"


def test_served_metadata_is_the_wheels_own_metadata_file(
    rich: tuple[LocalIndex, dict[str, Path]],
) -> None:
    site, files = rich
    result = site.get(f"{PROJECT_URL}{files['wheel-1.10'].name}.metadata")
    assert result.status_code == 200
    assert (
        result.content
        == core_metadata("Rich_Pkg", "1.10", requires_python="<4,>=3.8", summary="ten").encode()
    )


def test_an_sdist_with_metadata_2_2_serves_its_pkg_info(
    rich: tuple[LocalIndex, dict[str, Path]],
) -> None:
    site, files = rich
    name = files["sdist-1.10"].name
    result = site.get(f"{PROJECT_URL}{name}.metadata")
    assert result.status_code == 200
    assert result.content.startswith(b"Metadata-Version: 2.2\n")
    by_name = {file["filename"]: file for file in project_json(site)["files"]}
    assert by_name[name]["core-metadata"] == {"sha256": sha256_hex(result.content)}


def test_an_sdist_with_older_metadata_advertises_none_and_its_metadata_url_is_404(
    rich: tuple[LocalIndex, dict[str, Path]],
) -> None:
    site, files = rich
    name = files["sdist-1.2"].name
    anchor = parse_html(site.get(PROJECT_URL).text).anchors[name]
    assert "data-core-metadata" not in anchor.attributes
    assert "data-dist-info-metadata" not in anchor.attributes
    by_name = {file["filename"]: file for file in project_json(site)["files"]}
    assert by_name[name]["core-metadata"] is False
    assert site.get(f"{PROJECT_URL}{name}.metadata").status_code == 404


def test_every_advertised_metadata_url_answers_200_with_the_advertised_sha256(
    rich: tuple[LocalIndex, dict[str, Path]],
) -> None:
    site, _ = rich
    checked = 0
    for project in ("rich-pkg", "other"):
        base = f"/simple/{project}/"
        page = json.loads(site.get(f"/simple/{project}/", JSON_V1).text)
        for file in page["files"]:
            if file["core-metadata"] is False:
                continue
            url = absolute(base, file["url"]) + ".metadata"
            served = site.client.simulate_get(url, headers=site.read)
            assert served.status_code == 200, url
            assert file["core-metadata"] == {"sha256": sha256_hex(served.content)}, url
            checked += 1
    assert checked == 6  # four wheels and the 2.2 sdist of rich-pkg, the wheel of other


def test_metadata_of_a_file_of_another_project_is_404(
    rich: tuple[LocalIndex, dict[str, Path]],
) -> None:
    site, files = rich
    assert site.get(f"/simple/other/{files['wheel-1.2'].name}.metadata").status_code == 404
    assert site.get(f"{PROJECT_URL}no_such-1.0-py3-none-any.whl.metadata").status_code == 404
