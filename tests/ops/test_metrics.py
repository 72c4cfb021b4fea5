"""Prometheus metrics on real servers with two workers: off unless asked for, behind their own
secret on the server's port or alone on a listener of their own, and counts that add up over
the workers whichever one a scrape reaches, a dead worker's included."""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.core.test_cli import assert_one_line_error, local_server_args, run
from tests.hardening.support import (
    HTTP_TIMEOUT,
    ServerSpec,
    auth,
    fs_table,
    post_upload,
    read_auth,
    upload_body,
    wait_for_workers,
    wait_until,
    wheel_bytes,
    wheel_name,
    worker_pids,
    write_auth,
)
from tests.ops.support import (
    METRICS_SECRET,
    bearer,
    break_store,
    json_lines,
    mend_store,
    scrape,
    spread,
    start,
    value,
    wait_for_json_workers,
)
from tests.server import RunningServer, free_port

REQUESTS = "private_pypi_http_requests_total"
PAGES = {"route": "/simple/", "method": "GET", "status": "200"}


@pytest.fixture(scope="module")
def counted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A server with --metrics=secret, two workers, and JSON access lines naming each request's
    worker process."""
    spec = ServerSpec(
        tmp_path_factory.mktemp("metrics") / "root", {"local": fs_table("local")}, ("--workers=2",)
    )
    server = start(
        spec,
        "--metrics=secret",
        "--accesslog=-",
        "--log-format=json",
        metrics_secret=METRICS_SECRET,
    )
    try:
        wait_for_json_workers(server, 2)
        yield server
    finally:
        server.stop()


def scrape_counted(server: RunningServer) -> list[tuple[str, dict[str, str], float]]:
    return scrape(f"{server.url}/metrics", bearer(METRICS_SECRET))


def test_metrics_are_not_served_unless_asked_for(server: RunningServer) -> None:
    for headers in ({}, bearer(METRICS_SECRET), read_auth(server)):
        answer = requests.get(f"{server.url}/metrics", headers=headers, timeout=HTTP_TIMEOUT)
        assert answer.status_code == 404


def test_metrics_on_the_servers_port_need_the_metrics_secret(counted: RunningServer) -> None:
    url = f"{counted.url}/metrics"
    for headers in (
        {},
        bearer("not-the-metrics-secret"),
        read_auth(counted),  # a repository's secret is not the metrics secret
        auth("metrics", METRICS_SECRET),  # nor is basic auth a bearer token
    ):
        answer = requests.get(url, headers=headers, timeout=HTTP_TIMEOUT)
        assert answer.status_code == 401
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
        assert "private_pypi" not in answer.text
    answer = requests.get(url, headers=bearer(METRICS_SECRET), timeout=HTTP_TIMEOUT)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/plain")
    assert METRICS_SECRET not in counted.log()


def test_counts_add_up_over_both_workers_whichever_answers_the_scrape(
    counted: RunningServer,
) -> None:
    before = scrape_counted(counted)
    pages = 60
    offset = len(counted.log())
    answers = spread(
        pages, lambda _: requests.get(counted.simple_url, headers=read_auth(counted), timeout=15)
    )
    assert {answer.status_code for answer in answers} == {200}

    def counted_pages() -> float:
        return value(scrape_counted(counted), REQUESTS, **PAGES) - value(before, REQUESTS, **PAGES)

    assert wait_until(lambda: counted_pages() == pages), counted_pages()
    served_by = {
        line["process"]
        for line in json_lines(counted.log()[offset:])
        if line.get("path") == "/simple/"
    }
    assert len(served_by) == 2, f"one worker served every page: {served_by}"
    # Each scrape, on a new connection, reaches either worker: all say the same.
    assert {counted_pages() for _ in range(8)} == {pages}
    after = scrape_counted(counted)
    assert value(after, "private_pypi_workers") == 2
    size = len(answers[0].content)
    sent = "private_pypi_http_response_bytes_total"
    assert value(after, sent, route="/simple/") - value(before, sent, route="/simple/") == (
        pages * size
    )
    timed = "private_pypi_http_request_duration_seconds_count"
    assert value(after, timed, route="/simple/") - value(before, timed, route="/simple/") == pages


def test_uploads_and_auth_failures_are_counted_by_outcome(counted: RunningServer) -> None:
    before = scrape_counted(counted)
    filename, data = wheel_name("counted-pkg", "1.0"), wheel_bytes("counted-pkg", "1.0")
    body = upload_body(filename, data, name="counted-pkg", version="1.0")
    assert post_upload(counted, body, write_auth(counted)).status_code == 200
    assert post_upload(counted, body, write_auth(counted)).status_code == 200  # the same again
    other = upload_body(filename, data + b"x", name="counted-pkg", version="1.0")
    assert post_upload(counted, other, write_auth(counted)).status_code == 409
    broken = upload_body(wheel_name("counted-pkg", "2.0"), b"PK", name="counted-pkg", version="2.0")
    assert post_upload(counted, broken, write_auth(counted)).status_code == 400
    for _ in range(3):
        wrong = requests.get(counted.simple_url, headers=auth("local", "x"), timeout=15)
        assert wrong.status_code == 401
    after = scrape_counted(counted)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    uploads = "private_pypi_uploads_total"
    for outcome in ("stored", "existing", "conflict", "refused"):
        assert grew(uploads, repository="local", outcome=outcome) == 1, outcome
    assert grew("private_pypi_auth_failures_total", reason="wrong_credential") == 3
    assert value(after, "private_pypi_index_sync_age_seconds", repository="local") < 120
    assert value(after, "private_pypi_repository_ready", repository="local") == 1


def test_a_dead_workers_counts_stay_and_it_leaves_the_live_count(counted: RunningServer) -> None:
    spread(20, lambda _: requests.get(counted.simple_url, headers=read_auth(counted), timeout=15))
    before = value(scrape_counted(counted), REQUESTS, **PAGES)
    old = worker_pids(counted)
    os.kill(old[0], signal.SIGKILL)
    assert wait_until(lambda: old[0] not in worker_pids(counted))  # reaped by the master
    wait_for_json_workers(counted, 2)  # and replaced
    after = scrape_counted(counted)
    assert value(after, REQUESTS, **PAGES) == before
    assert value(after, "private_pypi_workers") == 2


def test_metrics_on_their_own_listener_are_all_it_serves(tmp_path: Path) -> None:
    store = tmp_path / "store"
    spec = ServerSpec(
        tmp_path / "root",
        {"local": fs_table("local", storage_path=str(store), sync_index_interval=1)},
        ("--workers=2",),
    )
    port = free_port()
    server = start(spec, f"--metrics=127.0.0.1:{port}")
    listener = f"http://127.0.0.1:{port}"
    try:
        wait_for_workers(server, 2)  # a worker starting without its store would not start
        assert requests.get(server.simple_url, headers=read_auth(server), timeout=15).ok
        samples = scrape(f"{listener}/metrics")  # no credential there
        assert value(samples, REQUESTS, **PAGES) == 1
        for path in ("/simple/", "/healthz", "/login/", "/metrics/"):
            answer = requests.get(listener + path, headers=read_auth(server), timeout=15)
            assert answer.status_code == 404, path
        assert requests.post(f"{listener}/metrics", timeout=15).status_code == 405
        main_port = requests.get(f"{server.url}/metrics", timeout=15)
        assert main_port.status_code == 404
        # A store that goes away shows in the sync failures and readiness of its repository.
        away = break_store(store)
        try:

            def failing() -> bool:
                samples = scrape(f"{listener}/metrics")
                failures = value(samples, "private_pypi_index_sync_failures_total")
                return failures > 0 and not value(samples, "private_pypi_repository_ready")

            assert wait_until(failing, timeout=15)
        finally:
            mend_store(store, away)
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("flags", "error"),
    [
        (["--metrics=secret"], "--metrics=secret needs --metrics_secret"),
        (["--metrics=secret", "--metrics_secret=short"], "at least 16 characters"),
        ([f"--metrics-secret={METRICS_SECRET}"], "only used with --metrics=secret"),
        (["--metrics=on"], "--metrics must be off, secret or HOST:PORT"),
        (["--port=9999", "--metrics=127.0.0.1:9999"], "the server itself listens on port 9999"),
    ],
)
def test_a_wrong_metrics_flag_stops_the_server_saying_why(
    tmp_path: Path, flags: list[str], error: str
) -> None:
    result = run(*local_server_args(tmp_path), *flags)
    assert_one_line_error(result, error)


def test_a_metrics_port_in_use_stops_the_server_saying_so(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run(*local_server_args(tmp_path), f"--metrics=127.0.0.1:{port}")
    assert_one_line_error(result, f"--metrics=127.0.0.1:{port}: cannot listen there")
