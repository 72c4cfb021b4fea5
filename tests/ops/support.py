"""Shared by the operations tests: real servers with known secrets (``tests.hardening``'s
``ServerSpec``), requests spread over the workers, and reading ``/metrics`` as Prometheus
does."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

from private_pypi_core.metrics import SECRET_VARIABLE
from tests.hardening.support import HTTP_TIMEOUT, ServerSpec, worker_pids
from tests.server import RunningServer, start_server

METRICS_SECRET = f"metrics-{secrets.token_hex(16)}"
Samples = list[tuple[str, dict[str, str], float]]


def start(spec: ServerSpec, *flags: str, metrics_secret: str | None = None) -> RunningServer:
    """``spec``'s server with more ``flags``; ``metrics_secret`` comes from the environment,
    as an operator keeps it off the command line."""
    env = {SECRET_VARIABLE: metrics_secret} if metrics_secret is not None else {}
    return spec.know_secrets(start_server(spec.root, *spec.args(*flags), env=env))


def json_lines(log: str) -> list[dict[str, object]]:
    """The lines of a --log_format=json server's log, each a JSON object (or the test fails)."""
    return [json.loads(line) for line in log.splitlines() if line.strip()]


def wait_for_json_workers(server: RunningServer, count: int, timeout: float = 20) -> list[int]:
    """The ``count`` workers of a --log_format=json server, once each has started its app."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = worker_pids(server)
        started = {
            line["process"]
            for line in json_lines(server.log())
            if line.get("message") == "Application startup complete."
        }
        if len(pids) == count and started.issuperset(pids):
            return pids
        time.sleep(0.05)
    raise AssertionError(f"{count} workers did not start:\n{server.log()[-3000:]}")


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def spread(count: int, send: Callable[[int], requests.Response]) -> list[requests.Response]:
    """``send(i)`` for ``count`` values of ``i``, 8 at a time, each on a new connection: one
    idle worker would accept every connection of a sequential client."""
    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(send, range(count)))


def scrape(url: str, headers: Mapping[str, str] | None = None) -> Samples:
    """Every sample of ``url``'s metrics, parsed as Prometheus parses them."""
    response = requests.get(url, headers=headers, timeout=HTTP_TIMEOUT)
    assert response.status_code == 200, response.text
    return [
        (sample.name, sample.labels, sample.value)
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    ]


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples called ``name`` that carry ``labels`` (0 when there is none)."""
    return sum(
        found
        for sample_name, sample_labels, found in samples
        if sample_name == name and labels.items() <= sample_labels.items()
    )


def break_store(folder: Path) -> Path:
    """Take a file-system store away as an unmounted share would, a plain file in its place;
    where it went."""
    away = folder.with_name(f"{folder.name}-away")
    folder.rename(away)
    folder.write_bytes(b"")
    return away


def mend_store(folder: Path, away: Path) -> None:
    folder.unlink()
    away.rename(folder)
