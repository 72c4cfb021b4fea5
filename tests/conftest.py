from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server import RunningServer, start_server


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    """A real server on the embedded default (repository ``local``), no extra index."""
    running = start_server(tmp_path / "root", "--extra_index_url=")
    yield running
    running.stop()
