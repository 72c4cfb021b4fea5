"""Where the server's own GitHub token comes from: the admin secret, as the original had it."""

from __future__ import annotations

import pytest

from private_pypi_core.errors import ConfigError
from private_pypi_github.backend import GitHubBackend
from private_pypi_github.config import GitHubConfig
from tests.github.conftest import OWNER, REPO, Scene


def config(scene: Scene) -> GitHubConfig:
    return GitHubConfig(
        name="team", type="github", owner=OWNER, repo=REPO, api_url=scene.emulator.api_url
    )


def test_admin_secret_is_the_servers_token(scene: Scene) -> None:
    backend = GitHubBackend(config(scene), scene.root, admin_secret=scene.writer)
    backend.write_index(b'{"format":1,"files":{\n\n}}\n', replaces=None)
    written = backend.read_index()
    assert written is not None and written.data.startswith(b'{"format":1')


def test_without_admin_secret_or_token_setting_the_error_says_how_to_give_one(
    scene: Scene,
) -> None:
    with pytest.raises(ConfigError, match="admin secret"):
        GitHubBackend(config(scene), scene.root)
