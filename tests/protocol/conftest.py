from __future__ import annotations

from pathlib import Path

import pytest

from tests.protocol.dists_extra import make_rich_wheel
from tests.protocol.helpers import LocalIndex, local_index


@pytest.fixture
def index(tmp_path: Path) -> LocalIndex:
    """The app in process on an empty embedded default, the extra index disabled."""
    return local_index(tmp_path / "root")


@pytest.fixture(scope="module")
def demo_index(tmp_path_factory: pytest.TempPathFactory) -> LocalIndex:
    """The app in process with project ``demo-pkg`` (one wheel); read only, shared by a module."""
    base = tmp_path_factory.mktemp("demo-index")
    site = local_index(base / "root")
    site.publish(make_rich_wheel(base / "dist", "demo-pkg", "1.0"))
    return site
