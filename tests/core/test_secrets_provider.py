"""The core's ``secrets`` auth provider: a repository's read and write secrets (or their
sha256) for any backend, compared in constant time, an empty secret opening nothing."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from private_pypi_core.auth_provider import Credential
from private_pypi_core.backend import Access
from private_pypi_core.repository import Repository
from private_pypi_fs.backend import FileSystemConfig

READ, WRITE = "r" * 64, "w" * 64


def repository(tmp_path: Path, **secrets: str) -> Repository:
    return Repository(FileSystemConfig(name="team", type="file_system", **secrets), tmp_path)


def ask(repository: Repository, secret: str, username: str = "team") -> Access | None:
    grant = repository.authenticate(Credential(username=username, secret=secret))
    return None if grant is None else grant.access


@pytest.mark.parametrize("hashed", [False, True], ids=["plain", "sha256"])
def test_each_secret_opens_what_it_should(tmp_path: Path, hashed: bool) -> None:
    if hashed:
        secrets = {
            "read_secret_sha256": hashlib.sha256(READ.encode()).hexdigest(),
            "write_secret_sha256": hashlib.sha256(WRITE.encode()).hexdigest().upper(),
        }
    else:
        secrets = {"read_secret": READ, "write_secret": WRITE}
    team = repository(tmp_path, **secrets)
    assert ask(team, WRITE) is Access.WRITE
    assert ask(team, READ) is Access.READ
    assert ask(team, READ + "x") is Access.NONE
    assert ask(team, "") is Access.NONE


def test_a_hash_is_not_a_secret(tmp_path: Path) -> None:
    digest = hashlib.sha256(READ.encode()).hexdigest()
    team = repository(tmp_path, read_secret_sha256=digest)
    assert ask(team, digest) is Access.NONE
    assert digest not in repr(team.config)


def test_an_unset_secret_opens_nothing_not_even_with_an_empty_one(tmp_path: Path) -> None:
    team = repository(tmp_path, read_secret="only-read")
    assert ask(team, "") is Access.NONE


def test_another_username_is_not_its_business(tmp_path: Path) -> None:
    team = repository(tmp_path, read_secret=READ)
    assert ask(team, READ, username="alice") is None
