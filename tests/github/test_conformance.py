"""The core's backend conformance suite, against the emulated GitHub."""

from __future__ import annotations

import pytest

from private_pypi_core.plugins import installed_backends
from private_pypi_core.testing import BackendConformance, BackendUnderTest
from private_pypi_github.backend import GitHubBackend
from tests.github.conftest import Scene


class TestGitHubBackend(BackendConformance):
    @pytest.fixture
    def subject(self, scene: Scene) -> BackendUnderTest:
        return BackendUnderTest(
            scene.backend(), read_secret=scene.reader, write_secret=scene.writer
        )


def test_plugin_is_found_through_its_entry_point() -> None:
    assert installed_backends()["github"] is GitHubBackend
