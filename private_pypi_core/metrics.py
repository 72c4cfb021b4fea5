"""Prometheus metrics of the server, added up over all its worker processes.

Off unless the server is started with ``--metrics``. Then the master makes a private folder
for prometheus_client's multiprocess mode (``shared_folder``): each worker writes its counts to
memory-mapped files of its own there, and a scrape, answered by any worker, adds up every
worker's, the dead ones' included (``forget_worker`` drops only their live gauges). Each worker
calls ``enable`` after the fork; until then every ``record_*`` function returns at once and
prometheus_client is not even imported.

Labels only take values from small known sets (route templates, not paths; status codes;
configured repository names, never one a client sent): no client can make the series grow.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from private_pypi_core.errors import ConfigError, UserError

if TYPE_CHECKING:
    from private_pypi_core.health import RepositoryHealth

FOLDER_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"  # how prometheus_client finds the shared folder
SECRET_VARIABLE = "PRIVATE_PYPI_METRICS_SECRET"
MIN_SECRET_CHARS = 16
METHODS = frozenset({"GET", "HEAD", "POST"})  # any other is counted as "other"
AUTH_FAILURES = ("wrong_credential", "too_many_checks")
# Pages take about a millisecond, uploads of large files minutes.
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60)


@dataclass(frozen=True)
class MetricsSettings:
    """Where ``/metrics`` is served: on the server's port to holders of ``secret`` (a bearer
    token), or on a listener of its own at ``bind`` (host, port), without a credential."""

    secret: str = field(default="", repr=False)
    bind: tuple[str, int] | None = None

    @property
    def address(self) -> str:
        assert self.bind is not None
        host, port = self.bind
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def metrics_settings(flag: str, secret: str, *, server_port: int) -> MetricsSettings | None:
    """The settings ``--metrics=off|secret|HOST:PORT`` and ``--metrics_secret`` spell, for a
    server on ``server_port``."""
    flag = flag.strip()
    if secret and flag != "secret":
        raise ConfigError("--metrics_secret is only used with --metrics=secret")
    if flag == "off":
        return None
    if flag == "secret":
        if len(secret) < MIN_SECRET_CHARS:
            raise ConfigError(
                f"--metrics=secret needs --metrics_secret (or {SECRET_VARIABLE}) of at least "
                f"{MIN_SECRET_CHARS} characters, e.g. from: openssl rand -hex 32"
            )
        return MetricsSettings(secret=secret)
    host, _, port = flag.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(
            f"--metrics must be off, secret or HOST:PORT (e.g. 127.0.0.1:9100), not {flag!r}"
        )
    if int(port) == server_port:
        raise ConfigError(f"--metrics={flag}: the server itself listens on port {port}")
    return MetricsSettings(bind=(host, int(port)))


@contextlib.contextmanager
def shared_folder() -> Iterator[Path]:
    """A new private folder (mode 0700) for the workers' counts, named in the environment they
    inherit; removed with everything in it when the master leaves the block."""
    folder = tempfile.mkdtemp(prefix="private-pypi-metrics-")
    os.environ[FOLDER_VARIABLE] = folder
    master = os.getpid()
    try:
        yield Path(folder)
    finally:
        # A worker, forked inside the block, leaves it too when it exits: it must not remove
        # what the others still count in.
        if os.getpid() == master:
            os.environ.pop(FOLDER_VARIABLE, None)
            shutil.rmtree(folder, ignore_errors=True)


def forget_worker(arbiter: Any, worker: Any) -> None:
    """gunicorn's ``child_exit`` hook, in the master: a dead worker counts no more among the
    live ones (its counters still add up)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


class _Instruments:
    """This worker's metrics, and the label children of the busiest ones, kept: a request
    then costs three dictionary lookups, not three label checks."""

    def __init__(self) -> None:
        from prometheus_client import Counter, Gauge, Histogram, values

        # Made again after the fork, in case something imported prometheus_client in the
        # master before the shared folder was named: the counts must go to files.
        values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
        self.requests = Counter(
            "private_pypi_http_requests",
            "HTTP requests answered, by route template, method and status.",
            ["route", "method", "status"],
            registry=None,
        )
        self.duration = Histogram(
            "private_pypi_http_request_duration_seconds",
            "Time from a request's arrival to the last byte of its answer, by route template.",
            ["route", "method"],
            buckets=DURATION_BUCKETS,
            registry=None,
        )
        self.sent = Counter(
            "private_pypi_http_response_bytes",
            "Bytes of answer bodies sent, by route template.",
            ["route"],
            registry=None,
        )
        self.uploads = Counter(
            "private_pypi_uploads",
            "Uploads by repository and outcome: stored, existing (the same file again), "
            "conflict, refused, failed.",
            ["repository", "outcome"],
            registry=None,
        )
        self.auth_failures = Counter(
            "private_pypi_auth_failures",
            "Credential checks that failed (wrong_credential), or were refused unchecked as a "
            "client had too many at once (too_many_checks).",
            ["reason"],
            registry=None,
        )
        for reason in AUTH_FAILURES:
            self.auth_failures.labels(reason)  # shown as 0 from the start: alerts can rate() it
        self.proxy_pages = Counter(
            "private_pypi_proxy_pages",
            "Pages a proxy repository asked its upstream for, by outcome: fetched, "
            "not_modified, missing (no such project), stale (the upstream failed: the page "
            "fetched before was served), failed (nothing to serve).",
            ["repository", "outcome"],
            registry=None,
        )
        self.proxy_files = Counter(
            "private_pypi_proxy_files",
            "Files (and core metadata) a proxy repository was asked for, by outcome: hit "
            "(from its cache), cached (fetched and stored), failed (not stored).",
            ["repository", "outcome"],
            registry=None,
        )
        self.sync_failures = Counter(
            "private_pypi_index_sync_failures",
            "Attempts to sync a repository's local index (or probe its store) that failed.",
            ["repository"],
            registry=None,
        )
        workers = Gauge(
            "private_pypi_workers",
            "Worker processes running.",
            multiprocess_mode="livesum",
            registry=None,
        )
        workers.set(1)
        self._by_request: dict[tuple[str, str, int], tuple[Any, Any, Any]] = {}

    def request(self, route: str, method: str, status: int, seconds: float, sent: int) -> None:
        key = (route, method if method in METHODS else "other", status)
        children = self._by_request.get(key)
        if children is None:
            children = self._by_request[key] = (
                self.requests.labels(route, key[1], str(status)),
                self.duration.labels(route, key[1]),
                self.sent.labels(route),
            )
        count, duration, sent_bytes = children
        count.inc()
        duration.observe(seconds)
        if sent:
            sent_bytes.inc(sent)


_instruments: _Instruments | None = None


def enable() -> None:
    """Start counting in this worker process; the master must have made the shared folder."""
    global _instruments
    if FOLDER_VARIABLE not in os.environ:
        raise RuntimeError(f"metrics need {FOLDER_VARIABLE}: run the server with --metrics")
    if _instruments is None:
        _instruments = _Instruments()


def enabled() -> bool:
    return _instruments is not None


def record_request(route: str, method: str, status: int, seconds: float, sent: int) -> None:
    if _instruments is not None:
        _instruments.request(route, method, status, seconds, sent)


def record_upload(repository: str, outcome: str) -> None:
    if _instruments is not None:
        _instruments.uploads.labels(repository, outcome).inc()


def upload_outcome(error: BaseException) -> str:
    """The ``outcome`` label of an upload that raised ``error``."""
    status = error.http_status if isinstance(error, UserError) else 503
    return "conflict" if status == 409 else "refused" if status < 500 else "failed"


def record_auth_failure(reason: str) -> None:
    if _instruments is not None:
        _instruments.auth_failures.labels(reason).inc()


def record_proxy_page(repository: str, outcome: str) -> None:
    if _instruments is not None:
        _instruments.proxy_pages.labels(repository, outcome).inc()


def record_proxy_file(repository: str, outcome: str) -> None:
    if _instruments is not None:
        _instruments.proxy_files.labels(repository, outcome).inc()


def record_sync_failure(repository: str) -> None:
    if _instruments is not None:
        _instruments.sync_failures.labels(repository).inc()


class _HealthCollector:
    """What the scraping worker knows of each repository at the time of the scrape."""

    def __init__(self, health: Iterable[RepositoryHealth]) -> None:
        self.health = list(health)

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        age = GaugeMetricFamily(
            "private_pypi_index_sync_age_seconds",
            "Seconds since the repository's local index was last synced (+Inf: never).",
            labels=["repository"],
        )
        ready = GaugeMetricFamily(
            "private_pypi_repository_ready",
            "1 when the repository's store answers and its index is recent (as /readyz).",
            labels=["repository"],
        )
        for repository in self.health:
            sync_age = math.inf if repository.sync_age is None else repository.sync_age
            age.add_metric([repository.name], sync_age)
            ready.add_metric([repository.name], 0.0 if repository.problem else 1.0)
        yield age
        yield ready


def exposition(health: Iterable[RepositoryHealth]) -> tuple[bytes, str]:
    """Every worker's metrics added up, with ``health`` as gauges: the text a scrape reads,
    and its content type. Reads the shared folder: call it in a thread."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    registry.register(_HealthCollector(health))
    return generate_latest(registry), CONTENT_TYPE_LATEST
