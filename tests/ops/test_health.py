"""``/healthz`` and ``/readyz`` as a load balancer and an operator meet them, on a real server
with two workers and two file-system repositories, one of whose stores goes away."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.hardening.support import (
    HTTP_TIMEOUT,
    ServerSpec,
    auth,
    fs_table,
    wait_for_workers,
    wait_until,
)
from tests.ops.support import break_store, mend_store, start
from tests.server import RunningServer

PROBE_SECONDS = 0.5  # a probe's answer never waits on anything


@dataclass
class Site:
    spec: ServerSpec
    server: RunningServer
    stores: dict[str, Path]

    def get(self, path: str, headers: dict[str, str] | None = None) -> requests.Response:
        return requests.get(self.server.url + path, headers=headers, timeout=HTTP_TIMEOUT)

    def admin(self) -> dict[str, str]:
        return auth("alpha", self.spec.admin["alpha"])

    def readiness(self, times: int = 6) -> set[int]:
        """The statuses of ``/readyz`` over ``times`` new connections (both workers)."""
        return {self.get("/readyz").status_code for _ in range(times)}


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    stores = {name: tmp_path / f"{name}-store" for name in ("alpha", "beta")}
    tables = {
        name: fs_table(name, storage_path=str(store), sync_index_interval=1)
        for name, store in stores.items()
    }
    spec = ServerSpec(tmp_path / "root", tables, ("--workers=2",))
    server = start(spec)
    try:
        wait_for_workers(server, 2)
        yield Site(spec, server, stores)
    finally:
        server.stop()


def test_healthz_answers_200_with_a_tiny_body_and_no_credential(site: Site) -> None:
    for method in ("GET", "HEAD"):
        answer = requests.request(method, f"{site.server.url}/healthz", timeout=HTTP_TIMEOUT)
        assert answer.status_code == 200
        assert answer.headers["Cache-Control"] == "no-store"
        assert answer.content == (b"ok\n" if method == "GET" else b"")


def test_readyz_answers_200_while_every_repository_can_be_served(site: Site) -> None:
    answer = site.get("/readyz")
    assert answer.status_code == 200
    assert answer.text == "ready: 2 package repositories\n"


def test_readyz_turns_503_when_a_store_goes_away_and_names_it_only_to_an_admin(
    site: Site,
) -> None:
    away = break_store(site.stores["beta"])
    try:
        # Each worker notices at its next sync, within a second (sync_index_interval = 1).
        # Sampled over many connections: a few may all reach the same worker.
        assert wait_until(lambda: site.readiness(20) == {503}, timeout=15), site.server.log()
        anonymous = site.get("/readyz")
        assert anonymous.text == ("not ready: 1 of 2 package repositories (store unreachable: 1)\n")
        with_read_secret = site.get("/readyz", auth("alpha", site.server.secret("alpha", "read")))
        for answer in (anonymous, with_read_secret):
            assert "alpha" not in answer.text and "beta" not in answer.text
            assert str(site.stores["beta"]) not in answer.text
        assert wait_until(lambda: site.get("/readyz", site.admin()).status_code == 503)
        by_admin = site.get("/readyz", site.admin())
        assert by_admin.status_code == 503
        assert by_admin.text.splitlines()[1:] == ["beta: store unreachable"]
        assert "not ready: beta: store unreachable" in site.server.log()
        # The other repository is still served.
        listing = site.get("/simple/", auth("alpha", site.server.secret("alpha", "read")))
        assert listing.status_code == 200
    finally:
        mend_store(site.stores["beta"], away)
    assert wait_until(lambda: site.readiness() == {200}, timeout=15), site.server.log()
    assert "ready again" in site.server.log()


def test_probes_are_answered_at_once_while_their_address_is_held_back_for_guessing(
    site: Site,
) -> None:
    wrong = auth("alpha", "not-the-secret")

    def guess(_: int) -> float:
        started = time.monotonic()
        answer = requests.get(f"{site.server.url}/simple/", headers=wrong, timeout=60)
        assert answer.status_code in (401, 429)
        return time.monotonic() - started

    with ThreadPoolExecutor(24) as pool:
        guesses = pool.map(guess, range(24))  # a dozen or so a worker, most held back
        time.sleep(1.0)  # the throttle holds back this address's answers by now
        probes = []
        for path in ("/healthz", "/readyz") * 3:
            started = time.monotonic()
            assert site.get(path).status_code == 200
            probes.append(time.monotonic() - started)
        held_back = max(guesses)
    assert held_back > 1.0, "the guesses were not held back"
    assert max(probes) < PROBE_SECONDS, probes


def test_a_server_started_while_a_store_is_away_serves_the_others_and_recovers(
    tmp_path: Path,
) -> None:
    stores = {name: tmp_path / f"{name}-store" for name in ("alpha", "beta")}
    tables = {
        name: fs_table(name, storage_path=str(store), sync_index_interval=1)
        for name, store in stores.items()
    }
    spec = ServerSpec(tmp_path / "root", tables, ("--workers=2",))
    start(spec).stop()  # both stores made
    away = break_store(stores["beta"])
    server = start(spec)
    try:
        wait_for_workers(server, 2)
        site = Site(spec, server, stores)
        assert site.readiness() == {503}
        alpha = requests.get(
            f"{server.simple_url}",
            headers=auth("alpha", str(tables["alpha"]["read_secret"])),
            timeout=10,
        )
        assert alpha.status_code == 200
        beta = requests.get(
            f"{server.simple_url}",
            headers=auth("beta", str(tables["beta"]["read_secret"])),
            timeout=10,
        )
        assert beta.status_code == 200  # from the local copy of its index
        mend_store(stores["beta"], away)
        assert wait_until(lambda: site.readiness() == {200}, timeout=15), server.log()
        beta = requests.get(
            f"{server.simple_url}",
            headers=auth("beta", str(tables["beta"]["read_secret"])),
            timeout=10,
        )
        assert beta.status_code == 200
    finally:
        server.stop()
