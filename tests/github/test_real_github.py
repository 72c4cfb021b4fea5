"""The GitHub backend against the real GitHub: opt-in, with a token and a scratch repository.

    GITHUB_TOKEN=... PRIVATE_PYPI_TEST_REPO=owner/scratch pytest tests/github/test_real_github.py

The repository needs a first commit and a token that may write to it (classic: ``repo``
scope). The test leaves it as it found it: its release, tag, asset and index file are removed.
``GITHUB_API_URL`` points it at GitHub Enterprise Server.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import requests

from private_pypi_core.backend import Access, FileExists, IndexConflict
from private_pypi_core.dists import parse_dist_filename
from private_pypi_github.backend import GitHubBackend
from private_pypi_github.config import DEFAULT_API_URL, GitHubConfig

TOKEN = os.environ.get("GITHUB_TOKEN", "")
REPOSITORY = os.environ.get("PRIVATE_PYPI_TEST_REPO", "")

pytestmark = pytest.mark.skipif(
    not (TOKEN and REPOSITORY),
    reason="set GITHUB_TOKEN and PRIVATE_PYPI_TEST_REPO=owner/repo to test against real GitHub",
)


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[GitHubBackend]:
    owner, _, repo = REPOSITORY.partition("/")
    config = GitHubConfig(
        name="real",
        type="github",
        owner=owner,
        repo=repo,
        api_url=os.environ.get("GITHUB_API_URL", DEFAULT_API_URL),
        index_filename=f"private-pypi-test-{secrets.token_hex(4)}.json",
        token=TOKEN,
    )
    yield GitHubBackend(config, tmp_path)


def test_files_and_index_round_trip_on_real_github(backend: GitHubBackend, tmp_path: Path) -> None:
    version = f"0.0.{int(time.time())}+probe.{secrets.token_hex(2)}"
    filename = f"private_pypi_probe-{version}.tar.gz"
    data = secrets.token_bytes(4096)
    source = tmp_path / filename
    source.write_bytes(data)
    dist = parse_dist_filename(filename)
    assert backend.token_access(TOKEN) is Access.WRITE
    assert backend.token_access(TOKEN + "x") is Access.NONE
    try:
        backend.write_file(dist, source)
        with pytest.raises(FileExists):
            backend.write_file(dist, source)
        assert filename in {stored.filename for stored in backend.list_files()}
        url = backend.download_url(dist)
        assert url is not None and requests.get(url, timeout=60).content == data
        with backend.open_file(dist) as stream:
            assert stream.read() == data

        backend.write_index(b'{"format":1,"files":{}}\n', replaces=None)
        first = backend.read_index()
        assert first is not None and backend.read_index() == first
        backend.write_index(b'{"format":1,"files":{\n}}\n', replaces=first)
        with pytest.raises(IndexConflict):
            backend.write_index(b"lost update", replaces=first)
    finally:
        _clean_up(backend, dist.project, dist.version)


def _clean_up(backend: GitHubBackend, project: str, version: str) -> None:
    """Remove the release, its tag and the index file the test made."""
    tag = f"{project}-{version}"
    client, repo_url = backend.client, backend.repository_url
    release = backend.releases.by_tag(tag)
    if release is not None:
        client.request("DELETE", f"{repo_url}/releases/{release.id}")
        client.request("DELETE", f"{repo_url}/git/refs/tags/{quote(tag, safe='')}")
    index = backend.read_index()
    if index is not None:
        client.request(
            "DELETE",
            f"{repo_url}/contents/{quote(backend.github.index_filename)}",
            json={
                "message": "Remove a test index",
                "sha": index.version,
                "branch": backend.branch(),
            },
        )
