"""Descriptions written to cost minutes to render, on a real server: their pages answer at once,
as plain text after a note, hold up no download, and leave one short line in the log each."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.hardening.support import HTTP_TIMEOUT, ServerSpec, read_auth, upload
from tests.server import RunningServer
from tests.ui.support import two_repositories, wheel

pytestmark = pytest.mark.e2e

PAGE_SECONDS = 3.0  # unbounded, the first took over a minute and the others answered 500
DOWNLOAD_SECONDS = 1.0  # 3 ms alone; 19.7 s behind 14 unbounded renders
NESTED_QUOTES = ">" * 100_000 + " x"  # Markdown: nh3 takes over a minute
DEEP_LISTS = "".join("  " * i + "- x\n\n" for i in range(200))  # docutils: RecursionError
# Nesting under the limit, one column a level, that docutils still cannot take.
RECURSING = "".join(" " * i + "x\n\n" for i in range(255))
PATHOLOGICAL = {
    "nested-quotes": wheel(
        "nested_quotes", "1.0", description=NESTED_QUOTES, content_type="text/markdown"
    ),
    "deep-lists": wheel("deep_lists", "1.0", description=DEEP_LISTS, content_type="text/x-rst"),
    "recursing": wheel("recursing", "1.0", description=RECURSING, content_type="text/x-rst"),
}
OTHER = wheel("other_thing", "1.0", description="Just *this*.", content_type="text/markdown")


def put(server: RunningServer, dist: tuple[str, bytes]) -> None:
    filename, data = dist
    name, version = filename.split("-")[:2]
    assert upload(server, filename, data, name=name, version=version).status_code == 200


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One worker, as the renders it runs are what is measured."""
    folder = tmp_path_factory.mktemp("descriptions")
    running = ServerSpec(folder / "root", two_repositories(), ("--workers=1",)).start()
    try:
        for dist in [*PATHOLOGICAL.values(), OTHER]:
            put(running, dist)
        yield running
    finally:
        running.stop()


def timed_get(server: RunningServer, path: str) -> tuple[requests.Response, float]:
    started = time.monotonic()
    response = requests.get(server.url + path, headers=read_auth(server), timeout=HTTP_TIMEOUT)
    return response, time.monotonic() - started


def log_lines(server: RunningServer, text: str) -> list[str]:
    return [line for line in server.log().splitlines() if text in line]


@pytest.mark.parametrize("project", sorted(PATHOLOGICAL))
def test_a_description_that_would_take_minutes_shows_at_once_as_plain_text(
    server: RunningServer, project: str
) -> None:
    response, seconds = timed_get(server, f"/project/{project}/")
    assert response.status_code == 200, response.text[:2000]
    assert seconds < PAGE_SECONDS
    assert '<p class="hint">This description shows as plain text: ' in response.text
    assert '<pre class="plain">' in response.text


def test_pages_rendering_at_once_hold_up_no_download(server: RunningServer) -> None:
    """Fourteen views of a description no page has shown yet, and a download meanwhile."""
    fresh = wheel(
        "nested_quotes", "2.0", description=NESTED_QUOTES + "y", content_type="text/markdown"
    )
    put(server, fresh)
    filename, data = OTHER
    with ThreadPoolExecutor(15) as pool:
        pages = [pool.submit(timed_get, server, "/project/nested-quotes/") for _ in range(14)]
        time.sleep(0.05)
        download, download_seconds = timed_get(server, f"/simple/other-thing/{filename}")
        answers = [page.result() for page in pages]
    assert download.status_code == 200 and download.content == data
    assert download_seconds < DOWNLOAD_SECONDS
    for response, seconds in answers:
        assert response.status_code == 200 and "2.0" in response.text
        assert '<pre class="plain">' in response.text
        assert seconds < PAGE_SECONDS
    assert len(log_lines(server, f"{fresh[0]}: description shown as plain text")) == 1


def test_the_log_has_one_short_line_per_description_and_no_traceback(
    server: RunningServer,
) -> None:
    for _ in range(3):
        for project in PATHOLOGICAL:
            assert timed_get(server, f"/project/{project}/")[0].status_code == 200
    assert "Traceback" not in server.log()
    for filename, _ in PATHOLOGICAL.values():
        [line] = log_lines(server, f"{filename}: description shown as plain text")
        assert len(line) < 400
    [recursion] = log_lines(server, "RecursionError")
    assert PATHOLOGICAL["recursing"][0] in recursion
