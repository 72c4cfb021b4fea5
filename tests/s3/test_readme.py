"""The plugin README's example configs work as written."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from private_pypi_core.auth_provider import Credential
from private_pypi_core.backend import Access
from private_pypi_core.config import repository_config
from private_pypi_core.dists import parse_dist_filename
from private_pypi_core.repository import Repository
from private_pypi_s3.config import S3Config
from tests.s3.conftest import fresh_prefix
from tests.s3.seaweed import IDENTITY_ACTIONS, Seaweed

README = Path(__file__).parents[2] / "plugins" / "private_pypi_s3" / "README.md"


def _block(language: str, after: str = "") -> str:
    text = README.read_text()
    start = text.index(after) if after else 0
    match = re.compile(rf"```{language}\n(.*?)```", re.S).search(text, start)
    assert match is not None, f"no {language} block after {after!r} in {README}"
    return match.group(1)


def _example(name: str) -> tuple[str, dict[str, Any]]:
    [(repository, table)] = tomllib.loads(_block("toml", f"<!-- example: {name} -->")).items()
    return repository, table


def test_seaweedfs_example_serves_a_repository(
    seaweed: Seaweed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name, table = _example("seaweedfs")
    monkeypatch.setenv(table["access_key_id_env"], seaweed.access_key_id)
    monkeypatch.setenv(table["secret_access_key_env"], seaweed.secret_access_key)
    # Only where this store listens, and a prefix of the test's own.
    table |= {"endpoint_url": seaweed.endpoint_url, "prefix": fresh_prefix()}
    repository = Repository(repository_config(name, table, label="README"), tmp_path)
    grant = repository.authenticate(Credential(name, table["write_secret"]))
    assert grant is not None and grant.access is Access.WRITE
    backend = repository.backend
    dist = parse_dist_filename("demo-1.0.tar.gz")
    source = tmp_path / dist.filename
    source.write_bytes(b"sdist")
    backend.write_file(dist, source)
    assert [stored.filename for stored in backend.list_files()] == [dist.filename]
    assert backend.download_url(dist) is not None


def test_seaweedfs_example_identity_has_the_rights_the_tests_use() -> None:
    [identity] = json.loads(_block("json"))["identities"]
    assert sorted(identity["actions"]) == sorted(IDENTITY_ACTIONS)


def test_aws_example_is_a_valid_config() -> None:
    name, table = _example("aws")
    config = repository_config(name, table, label="README")
    assert isinstance(config, S3Config)
    assert (config.endpoint_url, config.download, config.addressing_style) == (
        "",
        "redirect",
        "auto",
    )
