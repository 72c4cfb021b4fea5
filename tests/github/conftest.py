from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from private_pypi_github.backend import GitHubBackend
from private_pypi_github.config import GitHubConfig
from tests.github.emulator import Emulator

OWNER, REPO = "acme", "packages"
FULL_NAME = f"{OWNER}/{REPO}"


@dataclass
class Scene:
    """The emulated GitHub with one private package repository and a token per kind of user."""

    emulator: Emulator
    root: Path
    writer: str  # the owner's token (admin)
    reader: str  # a collaborator with the pull role
    stranger: str  # a user with no role: the private repository is hidden from them
    sleeps: list[float] = field(default_factory=list)  # waits of the backends' clients

    def backend(self, token: str | None = None, **settings: Any) -> GitHubBackend:
        """A backend of the package repository, whose client records its waits instead."""
        config = GitHubConfig(
            name="team",
            type="github",
            owner=settings.pop("owner", OWNER),
            repo=settings.pop("repo", REPO),
            api_url=self.emulator.api_url,
            token=token or self.writer,
            **settings,
        )
        backend = GitHubBackend(config, self.root)
        backend.client.sleep = self.sleeps.append
        return backend


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    """The emulated GitHub; a test fails if anything broke GitHub's published contract."""
    running = Emulator().start()
    yield running
    running.stop()
    assert running.violations == [], "\n".join(running.violations)


@pytest.fixture
def scene(emulator: Emulator, tmp_path: Path) -> Scene:
    emulator.add_repo(OWNER, REPO, roles={"bob": "pull"})
    return Scene(
        emulator=emulator,
        root=tmp_path / "root",
        writer=emulator.add_token(OWNER),
        reader=emulator.add_token("bob"),
        stranger=emulator.add_token("mallory"),
    )


@pytest.fixture
def source(tmp_path: Path) -> Callable[[str, bytes], Path]:
    """A local file to upload, named as given."""

    def make(filename: str, data: bytes) -> Path:
        path = tmp_path / "sources" / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    return make
