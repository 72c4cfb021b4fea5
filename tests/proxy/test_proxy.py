"""A proxy repository in front of a loopback upstream, driven through a real server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from tests.dists import make_sdist, make_wheel
from tests.ops.support import scrape, value
from tests.proxy.support import (
    auth,
    download,
    page,
    proxy_table,
    serving,
    sha256,
    team_table,
)
from tests.proxy.upstream import StaticUpstream
from tests.server import free_port


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[StaticUpstream]:
    with StaticUpstream(tmp_path / "upstream") as served:
        dist = tmp_path / "dist"
        served.add(
            make_wheel(dist, "demo-pkg", "1.0", requires_python=">=3.8"), requires_python=">=3.8"
        )
        served.add(make_wheel(dist, "demo-pkg", "1.1"), yanked="broken build")
        served.add(make_sdist(dist, "demo-pkg", "1.0"), metadata=False)
        yield served


def fetches(upstream: StaticUpstream, filename: str) -> int:
    """How many times the upstream was asked for the file itself."""
    return sum(path.endswith(f"/{filename}") for _, path, _ in upstream.requests)


def test_a_page_keeps_what_the_upstream_says_and_is_served_as_ours(
    tmp_path: Path, upstream: StaticUpstream
) -> None:
    with serving(tmp_path / "root", {"pypi": proxy_table(upstream.simple_url)}) as server:
        answer = page(server, "pypi", "demo-pkg")
        assert answer.status_code == 200, answer.text
        files = {file["filename"]: file for file in answer.json()["files"]}
        assert set(files) == {
            "demo_pkg-1.0-py3-none-any.whl",
            "demo_pkg-1.1-py3-none-any.whl",
            "demo_pkg-1.0.tar.gz",
        }
        wheel = files["demo_pkg-1.0-py3-none-any.whl"]
        assert wheel["url"] == "demo_pkg-1.0-py3-none-any.whl"  # ours, not the upstream's
        assert wheel["requires-python"] == ">=3.8"
        assert wheel["core-metadata"] and wheel["upload-time"].endswith("Z")
        assert files["demo_pkg-1.1-py3-none-any.whl"]["yanked"] == "broken build"
        assert files["demo_pkg-1.0.tar.gz"]["core-metadata"] is False
        assert answer.json()["versions"] == ["1.0", "1.1"]

        html = page(server, "pypi", "demo-pkg", Accept="text/html")
        assert 'data-yanked="broken build"' in html.text
        assert 'data-requires-python="&gt;=3.8"' in html.text
        again = page(server, "pypi", "demo-pkg", **{"If-None-Match": answer.headers["ETag"]})
        assert again.status_code == 304

        served = download(server, "pypi", "demo-pkg", wheel["url"])
        assert served.status_code == 200 and sha256(served.content) == wheel["hashes"]["sha256"]
        metadata = download(server, "pypi", "demo-pkg", wheel["url"] + ".metadata")
        assert sha256(metadata.content) == wheel["core-metadata"]["sha256"]
        assert download(server, "pypi", "demo-pkg", wheel["url"]).content == served.content
        assert fetches(upstream, wheel["filename"]) == 1  # the second came from the cache

        described = requests.get(f"{server.url}/pypi/demo-pkg/json", auth=auth("pypi"), timeout=30)
        info = described.json()["info"]  # from the core metadata, fetched through the proxy
        assert (info["version"], info["requires_python"]) == ("1.0", ">=3.8")  # 1.1 is yanked
        parts = server.root / "cache" / "pypi" / "storage" / ".index-parts"
        assert len(list(parts.iterdir())) == 1  # the page is one part of the index, not all


def test_a_page_is_renewed_conditionally_once_older_than_its_ttl(
    tmp_path: Path, upstream: StaticUpstream
) -> None:
    table = proxy_table(upstream.simple_url, page_ttl="1s")
    with serving(tmp_path / "root", {"pypi": table}) as server:
        assert page(server, "pypi", "demo-pkg").status_code == 200
        asked = upstream.count("/simple/demo-pkg/")
        assert page(server, "pypi", "demo-pkg").status_code == 200
        assert upstream.count("/simple/demo-pkg/") == asked  # within the TTL: not asked
        time.sleep(1.2)
        assert page(server, "pypi", "demo-pkg").status_code == 200
        assert upstream.not_modified_count == 1  # asked with the page's ETag: unchanged

        upstream.add(make_wheel(tmp_path / "dist", "demo-pkg", "2.0"))
        time.sleep(1.2)
        versions = page(server, "pypi", "demo-pkg").json()["versions"]
        assert versions == ["1.0", "1.1", "2.0"]


def test_concurrent_first_downloads_fetch_the_file_once(
    tmp_path: Path, upstream: StaticUpstream
) -> None:
    big = make_wheel(tmp_path / "dist", "big-pkg", "1.0", payload="x" * 3_000_000)
    upstream.add(big)
    with serving(tmp_path / "root", {"pypi": proxy_table(upstream.simple_url)}) as server:
        assert page(server, "pypi", "big-pkg").status_code == 200
        upstream.set_fault("slow_body", match=big.name, seconds=1.0)

        def fetch(_: int) -> bytes:
            return download(server, "pypi", "big-pkg", big.name).content

        with ThreadPoolExecutor(6) as pool:
            bodies = list(pool.map(fetch, range(6)))
        assert {sha256(body) for body in bodies} == {sha256(big.read_bytes())}
        assert fetches(upstream, big.name) == 1


@pytest.mark.parametrize(("fault", "said"), [("wrong_hash", "sha256"), ("truncate", "broke off")])
def test_a_bad_download_is_never_stored(
    tmp_path: Path, upstream: StaticUpstream, fault: str, said: str
) -> None:
    filename = "demo_pkg-1.0-py3-none-any.whl"
    with serving(tmp_path / "root", {"pypi": proxy_table(upstream.simple_url)}) as server:
        expected = {f["filename"]: f for f in page(server, "pypi", "demo-pkg").json()["files"]}
        upstream.set_fault(fault, match="/files/")  # type: ignore[arg-type]
        refused = download(server, "pypi", "demo-pkg", filename)
        assert refused.status_code == 502 and said in refused.text

        upstream.clear_fault()
        served = download(server, "pypi", "demo-pkg", filename)
        assert sha256(served.content) == expected[filename]["hashes"]["sha256"]
        assert fetches(upstream, filename) == 2  # the bad copy was not kept


def test_a_large_download_cut_short_ends_the_clients_answer_short(
    tmp_path: Path, upstream: StaticUpstream
) -> None:
    big = make_wheel(tmp_path / "dist", "big-pkg", "1.0", payload="y" * 6_000_000)
    upstream.add(big)
    with serving(tmp_path / "root", {"pypi": proxy_table(upstream.simple_url)}) as server:
        assert page(server, "pypi", "big-pkg").status_code == 200
        upstream.set_fault("wrong_hash", match="/files/")
        with pytest.raises(requests.exceptions.RequestException):
            download(server, "pypi", "big-pkg", big.name).raise_for_status()
        upstream.clear_fault()
        assert sha256(download(server, "pypi", "big-pkg", big.name).content) == sha256(
            big.read_bytes()
        )


def test_what_was_cached_is_served_while_the_upstream_fails(
    tmp_path: Path, upstream: StaticUpstream
) -> None:
    filename = "demo_pkg-1.0-py3-none-any.whl"
    table = proxy_table(upstream.simple_url, page_ttl="1s", timeout=1)
    with serving(tmp_path / "root", {"pypi": table}) as server:
        assert page(server, "pypi", "demo-pkg").status_code == 200
        wheel = download(server, "pypi", "demo-pkg", filename).content
        upstream.stop()
        time.sleep(1.2)
        stale = page(server, "pypi", "demo-pkg")
        assert stale.status_code == 200 and "Stale" in stale.headers["Warning"]
        assert download(server, "pypi", "demo-pkg", filename).content == wheel

        never = page(server, "pypi", "other-pkg")
        assert never.status_code == 502 and "out of reach" in never.text

        upstream.start()
        upstream.set_fault("slow", seconds=5)
        started = time.monotonic()
        slow = page(server, "pypi", "another-pkg")
        assert slow.status_code == 504 and "did not answer within 1 s" in slow.text
        assert time.monotonic() - started < 4  # bounded by the proxy's timeout


def test_allow_deny_and_the_cooldown_choose_what_is_offered(
    tmp_path: Path, upstream: StaticUpstream
) -> None:
    dist = tmp_path / "dist"
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    upstream.add(make_wheel(dist, "demo-pkg", "2.0"), upload_time=an_hour_ago)
    upstream.add(make_wheel(dist, "fresh-ok", "1.0"), upload_time=an_hour_ago)
    upstream.add(make_wheel(dist, "no-time", "1.0"), upload_time=None)
    upstream.add(make_wheel(dist, "evil-pkg", "1.0"))
    table = proxy_table(
        upstream.simple_url,
        deny=["evil-*"],
        min_upload_age="3d",
        cooldown_exempt=["fresh-*"],
        without_upload_time="hide",
    )
    with serving(tmp_path / "root", {"pypi": table}) as server:
        versions = page(server, "pypi", "demo-pkg").json()["versions"]
        assert versions == ["1.0", "1.1"]  # 2.0 is an hour old: cooling down
        young = download(server, "pypi", "demo-pkg", "demo_pkg-2.0-py3-none-any.whl")
        assert young.status_code == 404
        assert page(server, "pypi", "fresh-ok").json()["versions"] == ["1.0"]
        assert page(server, "pypi", "no-time").status_code == 404
        denied = page(server, "pypi", "evil-pkg")
        assert denied.status_code == 404 and "proxy settings leave it out" in denied.text
        assert upstream.count("evil-pkg") == 0


def test_files_without_upload_time_can_be_offered(tmp_path: Path, upstream: StaticUpstream) -> None:
    upstream.add(make_wheel(tmp_path / "dist", "no-time", "1.0"), upload_time=None)
    table = proxy_table(upstream.simple_url, min_upload_age="3d", without_upload_time="offer")
    with serving(tmp_path / "root", {"pypi": table}) as server:
        files = page(server, "pypi", "no-time").json()["files"]
        assert [f["filename"] for f in files] == ["no_time-1.0-py3-none-any.whl"]
        assert "upload-time" not in files[0]


def test_an_upstream_without_json_pages_is_read_from_html(
    tmp_path: Path, upstream: StaticUpstream
) -> None:
    upstream.set_fault("html_only")
    with serving(tmp_path / "root", {"pypi": proxy_table(upstream.simple_url)}) as server:
        files = {f["filename"]: f for f in page(server, "pypi", "demo-pkg").json()["files"]}
        assert files["demo_pkg-1.1-py3-none-any.whl"]["yanked"] == "broken build"
        wheel = files["demo_pkg-1.0-py3-none-any.whl"]
        served = download(server, "pypi", "demo-pkg", wheel["url"])
        assert sha256(served.content) == wheel["hashes"]["sha256"]
        assert served.headers["Content-Length"] == str(len(served.content))


def test_a_proxy_takes_no_uploads(tmp_path: Path, upstream: StaticUpstream) -> None:
    table = {**proxy_table(upstream.simple_url), "write_secret": "pypi-write"}
    with serving(tmp_path / "root", {"pypi": table}) as server:
        wheel = make_wheel(tmp_path / "dist", "mine", "1.0")
        refused = requests.post(
            f"{server.url}/simple/",
            auth=("pypi", "pypi-write"),
            files={"content": (wheel.name, wheel.read_bytes())},
            data={":action": "file_upload"},
            timeout=30,
        )
        assert refused.status_code == 403 and "takes no uploads" in refused.text


def test_files_are_fetched_only_from_the_upstream_and_the_origins_named(
    tmp_path: Path, upstream: StaticUpstream
) -> None:
    """The upstream is named by ``localhost``; its pages name files at ``127.0.0.1``: another
    origin, as a page pointing into the network would."""
    by_name = upstream.simple_url.replace("127.0.0.1", "localhost")
    with serving(tmp_path / "root", {"pypi": proxy_table(by_name)}) as server:
        assert page(server, "pypi", "demo-pkg").status_code == 404  # all three elsewhere
    named = proxy_table(by_name, file_origins=[upstream.url])
    with serving(tmp_path / "named", {"pypi": named}) as server:
        files = page(server, "pypi", "demo-pkg").json()["files"]
        assert len(files) == 3
        served = download(server, "pypi", "demo-pkg", files[0]["url"])
        assert sha256(served.content) == files[0]["hashes"]["sha256"]
    assert all("/files/" not in path for _, path, _ in upstream.requests[:2])


def test_the_metrics_count_the_caches_hits_fetches_and_the_upstreams_failures(
    tmp_path: Path, upstream: StaticUpstream
) -> None:
    filename = "demo_pkg-1.0-py3-none-any.whl"
    port = free_port()
    table = proxy_table(upstream.simple_url, page_ttl="1s")
    with serving(tmp_path / "root", {"pypi": table}, f"--metrics=127.0.0.1:{port}") as server:
        assert page(server, "pypi", "demo-pkg").status_code == 200
        assert page(server, "pypi", "not-there").status_code == 404
        for _ in range(3):
            assert download(server, "pypi", "demo-pkg", filename).status_code == 200
        upstream.stop()
        time.sleep(1.2)
        assert page(server, "pypi", "demo-pkg").status_code == 200  # stale
        assert page(server, "pypi", "other-pkg").status_code == 502
        samples = scrape(f"http://127.0.0.1:{port}/metrics")

    def count(name: str, outcome: str) -> float:
        return value(
            samples, f"private_pypi_proxy_{name}_total", repository="pypi", outcome=outcome
        )

    assert [count("pages", o) for o in ("fetched", "missing", "stale", "failed")] == [1, 1, 1, 1]
    assert [count("files", o) for o in ("cached", "hit", "failed")] == [1, 2, 0]


def test_a_project_the_upstream_lacks_is_a_404_never_a_redirect_to_the_extra_index(
    tmp_path: Path, upstream: StaticUpstream
) -> None:
    extra = "--extra_index_url=https://extra.example/simple/"
    tables = {"pypi": proxy_table(upstream.simple_url), "team": team_table()}
    with serving(tmp_path / "root", tables, extra) as server:
        private = requests.get(
            f"{server.url}/simple/not-upstream/",
            auth=("team", "team-read"),
            allow_redirects=False,
            timeout=30,
        )
        assert private.status_code == 303  # a repository of its own files redirects, as ever
        missing = requests.get(
            f"{server.url}/simple/not-upstream/",
            auth=auth("pypi"),
            allow_redirects=False,
            timeout=30,
        )
        assert missing.status_code == 404 and "not-upstream" in missing.text
