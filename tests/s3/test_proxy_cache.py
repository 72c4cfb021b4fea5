"""Two servers whose proxy repository caches in one bucket share that cache."""

from __future__ import annotations

import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.dists import make_wheel
from tests.proxy.support import download, page, proxy_table, serving, sha256
from tests.proxy.upstream import StaticUpstream
from tests.s3.conftest import fresh_prefix
from tests.s3.seaweed import Seaweed

pytestmark = pytest.mark.e2e

SYNC_INDEX_INTERVAL = 1


def test_a_file_cached_by_one_server_is_served_by_another_with_the_upstream_down(
    seaweed: Seaweed, tmp_path: Path
) -> None:
    wheel = make_wheel(tmp_path / "dist", "shared-pkg", "1.0", payload="z" * 200_000)
    with StaticUpstream(tmp_path / "upstream") as upstream, ExitStack() as servers:
        upstream.add(wheel)
        table = {
            **proxy_table(upstream.simple_url, page_ttl="1s"),
            **seaweed.settings(fresh_prefix()),
            "type": "s3",
            "sync_index_interval": SYNC_INDEX_INTERVAL,
        }
        first, second = (
            servers.enter_context(serving(tmp_path / f"root{i}", {"pypi": table})) for i in range(2)
        )
        assert page(first, "pypi", "shared-pkg").status_code == 200
        cached = download(first, "pypi", "shared-pkg", wheel.name)
        assert sha256(cached.content) == sha256(wheel.read_bytes())

        upstream.stop()
        deadline = time.monotonic() + SYNC_INDEX_INTERVAL + 4  # the second server's sync
        while (answer := page(second, "pypi", "shared-pkg")).status_code != 200:
            assert time.monotonic() < deadline, answer.text
            time.sleep(0.2)
        assert "Stale" in answer.headers["Warning"]  # its upstream is down: the shared page
        served = download(second, "pypi", "shared-pkg", wheel.name)
        assert served.content == cached.content
        assert sum(path.endswith(wheel.name) for _, path, _ in upstream.requests) == 1
