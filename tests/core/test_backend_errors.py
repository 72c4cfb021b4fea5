"""A backend that lets a non-``OSError`` escape (its store library's own error, a bug): the
server answers 503 with Retry-After, as for any store failure, never a 500, and logs the
original traceback once per outage, naming the backend's mistake."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import NoReturn

import pytest

from private_pypi_fs.backend import FileSystemBackend
from tests.core.helpers import Site
from tests.dists import make_wheel

OUTAGE_LOGGER = "private_pypi_core.outages"


def _database_is_locked(*args: object) -> NoReturn:
    raise RuntimeError("database is locked")


def test_a_backend_error_that_is_no_os_error_answers_503_and_is_logged_with_its_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    site = Site.open(tmp_path / "root")
    stored = make_wheel(tmp_path / "stored", "demo-pkg", "1.0")
    assert site.upload(stored).status_code == 200
    for method in ("list_files", "open_file", "write_file", "read_index", "write_index"):
        monkeypatch.setattr(FileSystemBackend, method, _database_is_locked)

    failures = [
        site.upload(make_wheel(tmp_path / "new", "demo-pkg", "2.0")),
        site.client.simulate_get(f"/simple/demo-pkg/{stored.name}", headers=site.read),
        site.client.simulate_get(f"/simple/demo-pkg/{stored.name}.metadata", headers=site.read),
        site.client.simulate_get("/pypi/demo-pkg/json", headers=site.read),
    ]
    for result in failures:
        assert result.status_code == 503, result.text
        assert result.headers["Retry-After"] == "30"
        assert "locked" not in result.text and "RuntimeError" not in result.text

    [logged] = [record for record in caplog.records if record.name == OUTAGE_LOGGER]
    assert logged.levelno == logging.ERROR
    message = logged.getMessage()
    assert "FileSystemBackend.read_index raised RuntimeError (database is locked)" in message
    assert "should raise OSError" in message
    assert logged.exc_info is not None, "a backend's mistake is logged with its traceback"
    cause = logged.exc_info[1].__cause__ if logged.exc_info[1] is not None else None
    assert isinstance(cause, RuntimeError)
