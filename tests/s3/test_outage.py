"""A real server on a real SeaweedFS that is killed (SIGKILL) while uploads are under way, then
restarted: how the server answers, what it logs, and what it holds afterwards.

The story runs once (the ``outage`` fixture); each test checks one side of it from outside:
the HTTP answers, the server's log, the bucket.
"""

from __future__ import annotations

import functools
import itertools
import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
import tomli_w

from tests.dists import make_wheel
from tests.e2e.clients import legacy_upload, project_links, sha256_of
from tests.s3.conftest import READ_SECRET, WRITE_SECRET, s3_environment, start_or_fail
from tests.s3.seaweed import Seaweed
from tests.server import RunningServer, start_server

pytestmark = pytest.mark.e2e

REPOSITORY = "local"  # the name tests.e2e.clients reads with
PROJECT = "outage-demo"
PREFIX = "outage"
WORKERS = 2
SYNC_INDEX_INTERVAL = 2  # short, so the sync loops hammer the dead store too
SENDERS = 4  # requests in flight at once, so both workers get some
KILL_AFTER_SECONDS = 0.5  # uploads are under way when the store dies
OUTAGE_SECONDS = 5.0
RECOVERY_SECONDS = 20.0
OUTAGE_START = re.compile(r"\[(\d+)\] ERROR \S+: repository local: store unavailable: (.+)")
OUTAGE_END = re.compile(r"\[(\d+)\] \w+ \S+: repository local: store reachable again after \d+ s")


@dataclass
class Answer:
    """One request sent while the store was being killed or was down."""

    request: str
    sent: float  # time.monotonic()
    status: int
    retry_after: str | None
    body: str


@dataclass
class Outage:
    server: RunningServer
    store: Seaweed
    first: Path  # uploaded before the outage
    killed: float  # time.monotonic() once the store was dead
    answers: list[Answer]
    log_during: str  # what the server logged from the kill to the restart
    log_after: str = ""  # what it logged from the restart until every worker saw the store back
    attempted: dict[str, Path] = field(default_factory=dict)  # every wheel sent, by filename


def _upload(server: RunningServer, path: Path) -> requests.Response:
    version = path.name.split("-")[1]
    return legacy_upload(
        server, path, name=PROJECT, version=version, auth=(REPOSITORY, WRITE_SECRET), timeout=120
    )


def _read(server: RunningServer, path: str) -> requests.Response:
    return requests.get(
        f"{server.url}{path}", auth=(REPOSITORY, READ_SECRET), allow_redirects=False, timeout=60
    )


def _worker_pids(log: str) -> set[str]:
    return set(re.findall(r"Booting worker with pid: (\d+)", log))


def _send_traffic(
    server: RunningServer, first: Path, directory: Path, until: float
) -> tuple[list[Answer], dict[str, Path]]:
    """Uploads of new versions and reads of every kind, from ``SENDERS`` threads, until
    ``until``: the answers, and the wheels whose upload was attempted."""
    answers: list[Answer] = []
    attempted: dict[str, Path] = {}
    lock = threading.Lock()
    counter = itertools.count()
    reads = [
        (name, functools.partial(_read, server, path))
        for name, path in [
            ("root page", "/simple/"),
            ("project page", f"/simple/{PROJECT}/"),
            ("json api", f"/pypi/{PROJECT}/json"),
            ("download", f"/simple/{PROJECT}/{first.name}"),
            ("metadata", f"/simple/{PROJECT}/{first.name}.metadata"),
        ]
    ]

    def send() -> None:
        while time.monotonic() < until:
            with lock:
                i = next(counter)
            wheel = make_wheel(directory / f"v{i}", PROJECT, f"2.{i}")
            with lock:
                attempted[wheel.name] = wheel
            for name, request in [("upload", functools.partial(_upload, server, wheel)), *reads]:
                sent = time.monotonic()
                response = request()
                answer = Answer(
                    name,
                    sent,
                    response.status_code,
                    response.headers.get("Retry-After"),
                    response.text,
                )
                with lock:
                    answers.append(answer)

    with ThreadPoolExecutor(SENDERS) as pool:
        for future in [pool.submit(send) for _ in range(SENDERS)]:
            future.result()
    return answers, attempted


def _wait_for_log(server: RunningServer, offset: int, done: Callable[[str], bool]) -> str:
    deadline = time.monotonic() + RECOVERY_SECONDS
    while True:
        text = server.log()[offset:]
        if done(text):
            return text
        if time.monotonic() > deadline:
            pytest.fail(f"not logged within {RECOVERY_SECONDS}s; the log since:\n{_head(text)}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def outage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outage]:
    """One server on its own SeaweedFS (this story kills it): a wheel uploaded, then uploads and
    reads sent from half a second before the store is killed until 5 s after, then the store
    restarted on the same data and port, until every worker logged that it answers again."""
    directory = tmp_path_factory.mktemp("outage")
    store = start_or_fail(tmp_path_factory.mktemp("outage-seaweed"))
    server: RunningServer | None = None
    try:
        with s3_environment(store):
            table = {
                "type": "s3",
                **store.settings(PREFIX),
                "read_secret": READ_SECRET,
                "write_secret": WRITE_SECRET,
                "sync_index_interval": SYNC_INDEX_INTERVAL,
            }
            config = directory / "config.toml"
            config.write_text(tomli_w.dumps({REPOSITORY: table}))
            admin_secret = directory / "admin_secret.toml"
            admin_secret.write_text(
                tomli_w.dumps({REPOSITORY: {"type": "s3", "raw": WRITE_SECRET}})
            )
            server = start_server(
                directory / "root",
                f"--config={config}",
                f"--admin_secret={admin_secret}",
                "--extra_index_url=",
                f"--workers={WORKERS}",
            )
            server.repositories = {
                REPOSITORY: {"read_secret": READ_SECRET, "write_secret": WRITE_SECRET}
            }
            first = make_wheel(directory / "first", PROJECT, "1.0", payload="before the outage")
            response = _upload(server, first)
            assert response.status_code == 200, response.text

            until = time.monotonic() + KILL_AFTER_SECONDS + OUTAGE_SECONDS
            with ThreadPoolExecutor(1) as pool:
                traffic = pool.submit(_send_traffic, server, first, directory / "dist", until)
                time.sleep(KILL_AFTER_SECONDS)
                offset = len(server.log())
                store.kill()
                killed = time.monotonic()
                answers, attempted = traffic.result()
            log_during = server.log()[offset:]

            restarted_at = len(server.log())
            store.restart()
            story = Outage(server, store, first, killed, answers, log_during, attempted=attempted)
            out = {match.group(1) for match in OUTAGE_START.finditer(log_during)}
            story.log_after = _wait_for_log(
                server,
                restarted_at,
                lambda text: out <= {m.group(1) for m in OUTAGE_END.finditer(text)},
            )
            yield story
    finally:
        if server is not None:
            server.stop()
        store.stop()


def _head(log: str, lines: int = 40) -> str:
    """The start of ``log``, enough to see what went wrong."""
    return "\n".join(log.splitlines()[:lines])


def _while_down(outage: Outage, request: str) -> list[Answer]:
    """The answers to ``request`` sent after the store was killed."""
    return [a for a in outage.answers if a.request == request and a.sent > outage.killed]


def test_during_an_outage_pages_are_served_and_store_failures_answer_503_naming_nothing(
    outage: Outage,
) -> None:
    # Served from the local index, without the store.
    for request, status in [
        ("root page", 200),
        ("project page", 200),
        ("download", 302),  # a presigned URL is made without asking the store
    ]:
        answers = _while_down(outage, request)
        assert answers and {a.status for a in answers} == {status}, (request, answers[:3])
    assert all(outage.first.name in a.body for a in _while_down(outage, "project page"))

    # What needs the store answers 503.
    uploads = _while_down(outage, "upload")
    assert len(uploads) >= 10, "the outage saw many uploads"
    assert {a.status for a in uploads} == {503}, [(a.status, a.body) for a in uploads[:3]]
    for request in ["metadata", "json api"]:  # both read core metadata from the store
        answers = _while_down(outage, request)
        assert answers and {a.status for a in answers} == {503}, (request, answers[:3])

    # Every store failure, whatever the request and however far it got, answers the same:
    # Retry-After, and a text that names nothing of the store.
    failures = [a for a in outage.answers if a.status >= 500]
    store = outage.store
    for answer in failures:
        assert answer.status == 503, answer
        assert answer.retry_after is not None and int(answer.retry_after) > 0, answer
        for internal in (
            str(store.s3_port),
            "127.0.0.1",
            "http",
            "endpoint",
            "s3:",
            store.bucket,
            PREFIX + "/",
            store.access_key_id,
        ):
            assert internal not in answer.body, f"{internal!r} in {answer.request}: {answer.body}"
    assert len({a.body for a in failures}) == 1, {a.body for a in failures}


def test_each_worker_logs_an_outage_once_with_its_cause_and_no_traceback(outage: Outage) -> None:
    log = outage.log_during
    assert "Traceback" not in log, _head(log)
    starts = OUTAGE_START.findall(log)
    pids = [pid for pid, _ in starts]
    assert pids, f"the outage is logged:\n{_head(log)}"
    assert len(pids) == len(set(pids)), f"one line per worker:\n{_head(log)}"
    assert set(pids) <= _worker_pids(outage.server.log())
    for _, cause in starts:
        assert "Could not connect" in cause, cause
    # Hundreds of failed requests and syncs, and not one line of their own (an upload that
    # was stored as the store died may still say so).
    lines = [line for line in log.splitlines() if line.strip() and ": published " not in line]
    assert len(lines) == len(starts), _head(log)


def test_the_end_of_an_outage_is_logged_and_afterwards_nothing_stored_is_lost(
    outage: Outage, tmp_path: Path
) -> None:
    server, store = outage.server, outage.store
    assert "Traceback" not in server.log(), _head(server.log())
    out = {pid for pid, _ in OUTAGE_START.findall(outage.log_during)}
    back = set(OUTAGE_END.findall(outage.log_after))
    assert out <= back, _head(outage.log_after)

    # The file uploaded before the outage is intact, in the bucket and through the server.
    redirect = _read(server, f"/simple/{PROJECT}/{outage.first.name}")
    assert redirect.status_code == 302, redirect.text
    stored = requests.get(redirect.headers["Location"], timeout=10)
    assert stored.content == outage.first.read_bytes(), stored.text[:500]

    # Every upload tried around the outage goes through now, answered ok or already stored.
    wheels = list(outage.attempted.values())
    with ThreadPoolExecutor(SENDERS) as pool:
        statuses = list(pool.map(lambda wheel: _upload(server, wheel).status_code, wheels))
    assert [(w.name, s) for w, s in zip(wheels, statuses, strict=True) if s != 200] == []
    fresh = make_wheel(tmp_path, PROJECT, "3.0")
    assert _upload(server, fresh).status_code == 200

    # Listed: exactly what is stored, with the right hashes.
    expected = {path.name: sha256_of(path) for path in [outage.first, fresh]}
    expected |= {name: sha256_of(path) for name, path in outage.attempted.items()}
    listed = {name: link.sha256 for name, link in project_links(server, PROJECT).items()}
    assert listed == expected
    objects = (
        store.client()
        .get_paginator("list_objects_v2")
        .paginate(Bucket=store.bucket, Prefix=f"{PREFIX}/{PROJECT}/")
    )
    keys = {item["Key"].rsplit("/", 1)[-1] for page in objects for item in page.get("Contents", [])}
    assert set(listed) <= keys
