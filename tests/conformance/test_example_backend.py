"""The guide's example backend (``docs/example/private_pypi_sqlite``), installed as a plugin,
passes the conformance suite: the test the guide shows."""

from __future__ import annotations

from pathlib import Path

import pytest

from private_pypi_core.testing import BackendConformance, BackendUnderTest
from private_pypi_sqlite import SQLiteBackend, SQLiteConfig


def sqlite_backend(root: Path) -> SQLiteBackend:
    return SQLiteBackend(SQLiteConfig(name="team", type="sqlite"), root)


def unreachable_backend(root: Path) -> SQLiteBackend:
    """A backend whose database file is a folder: SQLite cannot open it."""
    backend = sqlite_backend(root)
    backend.path.mkdir(parents=True)
    return backend


class TestSQLiteBackend(BackendConformance):
    @pytest.fixture
    def subject(self, tmp_path: Path) -> BackendUnderTest:
        return BackendUnderTest(
            sqlite_backend(tmp_path / "root"),
            broken=lambda: unreachable_backend(tmp_path / "broken"),
        )
