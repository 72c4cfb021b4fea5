"""A proxy repository under a hostile or failing upstream, and readers asking too much: what
an attacker would try, against a real server."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.dists import make_wheel
from tests.proxy.support import (
    download,
    page,
    proxy_table,
    serving,
    sha256,
    team_table,
    upload,
)
from tests.proxy.upstream import StaticUpstream


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[StaticUpstream]:
    with StaticUpstream(tmp_path / "upstream") as served:
        served.add(make_wheel(tmp_path / "public", "demo-pkg", "1.0", payload="d" * 500_000))
        yield served


def test_a_slow_upstream_download_holds_up_no_other_repository(
    tmp_path: Path, upstream: StaticUpstream
) -> None:
    filename = "demo_pkg-1.0-py3-none-any.whl"
    repositories = {"team": team_table(), "pypi": proxy_table(upstream.simple_url, timeout=5)}
    with serving(tmp_path / "root", repositories) as server:
        private = make_wheel(tmp_path / "dist", "own-pkg", "1.0")
        assert upload(server, "team", private).ok
        assert page(server, "pypi", "demo-pkg").status_code == 200
        upstream.set_fault("slow_body", match=filename, seconds=3)

        with ThreadPoolExecutor(24) as pool:
            first_downloads = [
                pool.submit(download, server, "pypi", "demo-pkg", filename) for _ in range(24)
            ]
            time.sleep(0.5)  # every first download is waiting on the stalled upstream
            started = time.monotonic()
            own = requests.get(
                f"{server.url}/simple/own-pkg/{private.name}",
                auth=("team", "team-read"),
                timeout=2.5,  # before the upstream's stall ends
            )
            assert own.status_code == 200 and own.content == private.read_bytes()
            assert time.monotonic() - started < 2.5
            bodies = [future.result().content for future in first_downloads]
        assert len({sha256(body) for body in bodies}) == 1
        assert sum(path.endswith(filename) for _, path, _ in upstream.requests) == 1


def test_a_redirect_to_another_origin_is_not_followed(
    tmp_path: Path, upstream: StaticUpstream
) -> None:
    with StaticUpstream(tmp_path / "inside") as inside:  # an address inside the network
        with serving(tmp_path / "root", {"pypi": proxy_table(upstream.simple_url)}) as server:
            assert page(server, "pypi", "demo-pkg").status_code == 200
            upstream.set_fault("redirect", match="/files/", location=f"{inside.url}/secret")
            refused = download(server, "pypi", "demo-pkg", "demo_pkg-1.0-py3-none-any.whl")
            assert refused.status_code == 502 and "redirected to another origin" in refused.text
            upstream.set_fault("redirect", match="/simple/", location=f"{inside.url}/simple/x/")
            assert page(server, "pypi", "other-pkg").status_code == 502
        assert inside.requests == []


def test_the_upstreams_credentials_go_to_it_alone_and_are_never_stored(
    tmp_path: Path, upstream: StaticUpstream
) -> None:
    with_credentials = upstream.simple_url.replace("://", "://mirror:S3cr3t-pw@")
    root = tmp_path / "root"
    with serving(root, {"pypi": proxy_table(with_credentials)}) as server:
        answer = page(server, "pypi", "demo-pkg")
        wheel = answer.json()["files"][0]
        served = download(server, "pypi", "demo-pkg", wheel["url"])
        assert sha256(served.content) == wheel["hashes"]["sha256"]
        assert "S3cr3t" not in answer.text + str(answer.headers) + server.log()
    expected = "Basic " + base64.b64encode(b"mirror:S3cr3t-pw").decode()
    assert upstream.authorizations and set(upstream.authorizations) == {expected}
    stored = [path for path in root.rglob("*") if path.is_file()]
    assert not [path for path in stored if b"S3cr3t" in path.read_bytes()]


def test_a_range_of_a_file_not_yet_cached_is_served_and_the_file_fetched_once(
    tmp_path: Path, upstream: StaticUpstream
) -> None:
    filename = "demo_pkg-1.0-py3-none-any.whl"
    with serving(tmp_path / "root", {"pypi": proxy_table(upstream.simple_url)}) as server:
        assert page(server, "pypi", "demo-pkg").status_code == 200
        whole = (tmp_path / "public" / filename).read_bytes()
        for first, last in [(100, 200), (len(whole) - 10, len(whole) - 1)]:
            part = requests.get(
                f"{server.url}/simple/demo-pkg/{filename}",
                auth=("pypi", "pypi-read"),
                headers={"Range": f"bytes={first}-{last}"},
                timeout=30,
            )
            assert part.status_code == 206 and part.content == whole[first : last + 1]
        assert sum(path.endswith(filename) for _, path, _ in upstream.requests) == 1


def test_made_up_names_leave_nothing_behind(tmp_path: Path, upstream: StaticUpstream) -> None:
    root = tmp_path / "root"
    with serving(root, {"pypi": proxy_table(upstream.simple_url)}) as server:
        for number in range(200):
            assert page(server, "pypi", f"made-up-{number}").status_code == 404
        asked = upstream.count("/simple/made-up-")
        assert page(server, "pypi", "made-up-7").status_code == 404
        assert upstream.count("/simple/made-up-") <= asked + 1  # remembered (by a worker)
    records = list((root / "cache" / "pypi" / "upstream").glob("made-up-*"))
    assert records == []


def test_a_client_that_goes_away_leaves_the_file_cached(
    tmp_path: Path, upstream: StaticUpstream
) -> None:
    big = make_wheel(tmp_path / "dist", "big-pkg", "1.0", payload="b" * 8_000_000)
    upstream.add(big)
    with serving(tmp_path / "root", {"pypi": proxy_table(upstream.simple_url)}) as server:
        assert page(server, "pypi", "big-pkg").status_code == 200
        upstream.set_fault("slow_body", match=big.name, seconds=1)
        with requests.get(
            f"{server.url}/simple/big-pkg/{big.name}",
            auth=("pypi", "pypi-read"),
            stream=True,
            timeout=30,
        ) as gone:
            assert len(next(gone.iter_content(65536))) > 0  # then the client hangs up
        upstream.clear_fault()
        deadline = time.monotonic() + 15
        while not list((server.root / "cache" / "pypi" / "storage" / "big-pkg").glob("*.whl")):
            assert time.monotonic() < deadline, "the fetch did not finish on its own"
            time.sleep(0.2)
        served = download(server, "pypi", "big-pkg", big.name)
        assert served.content == big.read_bytes()
        assert sum(path.endswith(big.name) for _, path, _ in upstream.requests) == 1
