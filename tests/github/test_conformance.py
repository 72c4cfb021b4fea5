"""The core's backend conformance suite, against the emulated GitHub."""

from __future__ import annotations

import dataclasses

import pytest

from private_pypi_core.plugins import installed_backends
from private_pypi_core.testing import BackendConformance, BackendUnderTest
from private_pypi_github.backend import GitHubBackend
from tests.github.conftest import Scene
from tests.server import free_port


def unreachable_backend(scene: Scene) -> GitHubBackend:
    """The scene's backend, but with GitHub on a port nothing listens on (its client's
    retries are recorded, not waited for)."""
    config = dataclasses.replace(
        scene.backend().github, api_url=f"http://127.0.0.1:{free_port()}/api/v3"
    )
    backend = GitHubBackend(config, scene.root)
    backend.client.sleep = scene.sleeps.append
    return backend


class TestGitHubBackend(BackendConformance):
    @pytest.fixture
    def subject(self, scene: Scene) -> BackendUnderTest:
        return BackendUnderTest(scene.backend(), broken=lambda: unreachable_backend(scene))


def test_plugin_is_found_through_its_entry_point() -> None:
    assert installed_backends()["github"] is GitHubBackend
