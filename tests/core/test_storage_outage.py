"""A file-system store that goes away (an unmounted share, a failed disk) under the app in
process: what clients are answered and what the log says."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from tests.core.helpers import Site
from tests.dists import make_wheel

OUTAGE_LOGGER = "private_pypi_core.outages"


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return Site.open(tmp_path / "root")


def _outage_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == OUTAGE_LOGGER]


def test_a_store_out_of_reach_answers_503_naming_no_path_and_is_logged_once_per_outage(
    site: Site, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    first = make_wheel(tmp_path / "first", "demo-pkg", "1.0")
    second = make_wheel(tmp_path / "second", "demo-pkg", "2.0")
    assert site.upload(first).status_code == 200
    # The store's folder is gone, and a plain file sits where it was mounted.
    away = site.storage.with_name("storage-away")
    site.storage.rename(away)
    site.storage.write_bytes(b"")

    failures = [site.upload(second) for _ in range(3)]
    failures.append(
        site.client.simulate_get(f"/simple/demo-pkg/{first.name}.metadata", headers=site.read)
    )
    for result in failures:
        assert result.status_code == 503, result.text
        assert result.headers["Retry-After"] == "30"
        for internal in (str(site.root), "Errno", "index.json", "directory"):
            assert internal not in result.text, result.text
    page = site.client.simulate_get("/simple/demo-pkg/", headers=site.read)
    assert page.status_code == 200 and first.name in page.text and second.name not in page.text

    [started] = _outage_records(caplog)
    assert started.levelno == logging.ERROR and started.exc_info is None
    assert started.getMessage().startswith("repository local: store unavailable: ")
    assert "Not a directory" in started.getMessage()

    site.storage.unlink()
    away.rename(site.storage)
    assert site.upload(second).status_code == 200
    [_, ended] = _outage_records(caplog)
    assert ended.getMessage().startswith("repository local: store reachable again after ")
    # The failed requests (and the sync loop's attempts) are only counted.
    failed = re.search(r"\((\d+) store calls failed\)", ended.getMessage())
    assert failed is not None and int(failed.group(1)) >= len(failures), ended.getMessage()
