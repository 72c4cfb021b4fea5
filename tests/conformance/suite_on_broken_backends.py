"""The conformance suite on each backend of ``broken.py``, in a pytest run of its own (started
by ``test_the_suite_catches_mistakes.py``; its name keeps it out of the main run, where its
failures are the point)."""

from __future__ import annotations

from pathlib import Path

import pytest

from private_pypi_core.testing import BackendConformance, BackendUnderTest
from private_pypi_sqlite import SQLiteBackend, SQLiteConfig
from tests.conformance import broken


class BrokenBackendSuite(BackendConformance):
    backend_class: type[SQLiteBackend]

    def make(self, root: Path) -> SQLiteBackend:
        return self.backend_class(SQLiteConfig(name="team", type="sqlite"), root)

    def unreachable(self, root: Path) -> SQLiteBackend:
        backend = self.make(root)
        backend.path.mkdir(parents=True)  # a folder where the database file should be
        return backend

    @pytest.fixture
    def subject(self, tmp_path: Path) -> BackendUnderTest:
        return BackendUnderTest(
            self.make(tmp_path / "root"), broken=lambda: self.unreachable(tmp_path / "broken")
        )


class TestThreadBoundStream(BrokenBackendSuite):
    backend_class = broken.ThreadBoundStream


class TestSQLiteErrorsEscape(BrokenBackendSuite):
    backend_class = broken.SQLiteErrorsEscape


class TestVisibleWhileWriting(BrokenBackendSuite):
    backend_class = broken.VisibleWhileWriting


class TestOneValuePerFile(BrokenBackendSuite):
    backend_class = broken.OneValuePerFile


class TestOneValueWithALimit(BrokenBackendSuite):
    backend_class = broken.OneValueWithALimit


class TestListsItsTempFiles(BrokenBackendSuite):
    backend_class = broken.ListsItsTempFiles
