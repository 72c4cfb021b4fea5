"""A proxy repository (a pull-through cache of an upstream index) against what it stands in for.

Two of our servers run side by side: the **upstream**, a private repository ``local`` holding
the corpus and a few big wheels (one per download measured, so each first download is one),
and the **proxy server**, whose proxy repository ``pypi`` mirrors the upstream's ``/simple/``
(the upstream's read credential in the URL, ``page_ttl = "1h"``) beside a private repository
``local`` holding the same corpus. Three comparisons:

1. a cached proxy page against a private page of the same server: a random
   ``/simple/<project>/`` under load, once every proxy page was fetched and a short load
   warmed both workers (each learns for itself that a page is fresh);
2. the first fetch of a page through the proxy against the upstream's own answer to the same
   request: projects never fetched, one request at a time on keep-alive connections, direct
   and through the proxy interleaved, after a short load warmed the upstream on those pages;
3. the first download of a big wheel through the proxy (streamed from the upstream while it
   is stored) against the same download straight from the upstream, then the second
   download through the proxy, from its cache.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.client import Http
from bench.console import log
from bench.corpus import VERSIONS, BigFile, Corpus, ensure_big
from bench.load import LoadResult, LoadSettings, Spec, run_load
from bench.report import Cell, ProxyReport
from bench.servers import (
    Server,
    add_proxy_repository,
    basic_auth,
    prepare_ours,
    running,
    start_ours,
    update_index,
)
from bench.transfer import MB, download_client, fetch_file

PROXY = "pypi"  # the proxy repository's name (and its user in HTTP basic auth)
PRIVATE = "local"
PAGE_TTL = "1h"  # longer than the run: a cached page is never renewed while measured
TIMEOUT_SECONDS = 10
WARM_SECONDS = 1.0
FEW_REQUESTS = 200
# What pip sends, and what the proxy asks its upstream for: PEP 691 JSON first.
PIP_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, "
    "text/html; q=0.01"
)


@dataclass(frozen=True)
class ProxyBenchSettings:
    first_fetches: int  # projects whose first fetch is timed
    downloads: int  # big wheels, each downloaded directly, then twice through the proxy
    download_mb: int
    workers: int
    load: LoadSettings
    gzip: bool
    cache: Path


@dataclass
class _Setup:
    upstream: Server
    proxy: Server
    proxy_root: Path
    upstream_auth: str  # the upstream's read credential (user ``local``)
    proxy_auth: str  # the proxy repository's (user ``pypi``)
    private_auth: str  # the proxy server's private repository's (user ``local``)


def run_proxy(settings: ProxyBenchSettings, corpus: Corpus, work: Path) -> ProxyReport:
    """Start both servers, measure the three comparisons, stop them; a comparison that fails
    is a remark, the others keep their figures."""
    projects = corpus.projects
    first = min(settings.first_fetches, len(projects) - 1)
    report = ProxyReport(
        projects=len(projects), first_fetches=first, download_mb=settings.download_mb
    )
    started = time.perf_counter()
    bigs = [
        ensure_big(settings.cache, f"bench-proxy-{index + 1}", settings.download_mb)
        for index in range(settings.downloads)
    ]
    log(f"{len(bigs)} big wheels for the proxy ready in {time.perf_counter() - started:.1f} s")
    upstream_setup = prepare_ours(
        work / "upstream", [*corpus.files(), *((big.project, big.path) for big in bigs)]
    )
    update_index(upstream_setup)
    proxy_setup = prepare_ours(work / "proxy", corpus.files())
    update_index(proxy_setup)
    with running(lambda: start_ours(upstream_setup, settings.workers, name="upstream")) as upstream:
        upstream_url = (
            f"http://{PRIVATE}:{upstream_setup.read_secret}@127.0.0.1:{upstream.port}/simple/"
        )
        proxy_secret = add_proxy_repository(
            proxy_setup, PROXY, upstream_url, page_ttl=PAGE_TTL, timeout=TIMEOUT_SECONDS
        )
        with running(lambda: start_ours(proxy_setup, settings.workers, name="proxy")) as proxy:
            setup = _Setup(
                upstream=upstream,
                proxy=proxy,
                proxy_root=proxy_setup.root,
                upstream_auth=basic_auth(PRIVATE, upstream_setup.read_secret),
                proxy_auth=basic_auth(PROXY, proxy_secret),
                private_auth=basic_auth(PRIVATE, proxy_setup.read_secret),
            )
            steps: list[tuple[str, Callable[[], None]]] = []
            if first > 0:  # first: these projects must never have been fetched through it
                steps.append(
                    (
                        "first fetch",
                        lambda: _first_fetches(settings, setup, projects[:first], report),
                    )
                )
            steps.append(("cached page", lambda: _cached_pages(settings, setup, projects, report)))
            if bigs:
                steps.append(("download", lambda: _downloads(setup, bigs, report)))
            os.sync()  # the sections before wrote a lot: their writeback must not weigh here
            for name, step in steps:
                try:
                    step()
                except Exception as error:  # one comparison failing must not lose the others
                    log(f"proxy, {name} failed: {error}")
                    report.remarks.append(f"{name} failed: {error}")
    _describe(report, settings, first, len(bigs))
    return report


def _describe(report: ProxyReport, settings: ProxyBenchSettings, first: int, bigs: int) -> None:
    report.remarks += [
        "upstream: ours, a private repository holding the corpus; proxy: ours, a proxy "
        f"repository of the upstream's `/simple/` (its read credential in the URL, page_ttl "
        f'"{PAGE_TTL}") beside a private repository holding the same corpus; '
        f"{settings.workers} workers each, on the same cores",
        "cached page: every proxy page fetched once, then both repositories warmed by a "
        f"{WARM_SECONDS:g} s load; reference: the private repository of the proxy server; "
        "each measured in two half windows (proxy, private, private, proxy), its p50 and p99 "
        "the means of those of its windows, weighted by their requests; CPU per request: "
        "the server's (master + workers, user + system, /proc) over the windows, divided by "
        "their requests, which other work on the cores moves less than req/s",
        f"first fetch: {first} projects never fetched before, `Accept` as pip sends it, one "
        "request at a time on a keep-alive connection; reference: the same page from the "
        f"upstream directly, warmed by a {WARM_SECONDS:g} s load first (what the proxy adds is "
        "its own work: the upstream's answer, storing the project, rendering the page)",
        f"downloads: {bigs} distinct {settings.download_mb} MB wheels (curl), each from the "
        "upstream directly (after one untimed download), then through the proxy twice (its "
        "page fetched before, untimed); MB/s: total bytes over total time",
    ]


def _first_fetches(
    settings: ProxyBenchSettings, setup: _Setup, projects: list[str], report: ProxyReport
) -> None:
    upstream_headers = {"Authorization": setup.upstream_auth, "Accept": PIP_ACCEPT}
    proxy_headers = {"Authorization": setup.proxy_auth, "Accept": PIP_ACCEPT}
    paths = [f"/simple/{project}/" for project in projects]
    warm = dataclasses.replace(settings.load, duration=WARM_SECONDS)
    run_load(setup.upstream.port, [Spec(path, upstream_headers) for path in paths], warm)
    direct, through = [], []
    with Http(setup.upstream.port) as upstream, Http(setup.proxy.port) as proxy:
        for path in paths:
            direct.append(_timed_page(upstream, path, upstream_headers, "upstream"))
            through.append(_timed_page(proxy, path, proxy_headers, "proxy"))
    for column, seconds in (("reference", direct), ("proxy", through)):
        report.set(column, "first_p50", Cell(statistics.median(seconds) * 1e3))
        report.set(column, "first_p90", Cell(_nearest_rank(seconds, 90) * 1e3))
    log(
        f"proxy, first fetch of {len(paths)} pages: median {statistics.median(through) * 1e3:.2f}"
        f" ms, upstream directly {statistics.median(direct) * 1e3:.2f} ms"
    )


def _timed_page(http: Http, path: str, headers: dict[str, str], name: str) -> float:
    """Seconds a GET of a project's page takes; it must be a JSON page of every file."""
    started = time.perf_counter()
    response = http.get(path, headers)
    seconds = time.perf_counter() - started
    if response.status != 200:
        raise RuntimeError(f"{name}: GET {path} answered {response.status}")
    files = json.loads(response.body)["files"]
    if len(files) != 2 * len(VERSIONS):
        raise RuntimeError(f"{name}: {path} lists {len(files)} files, not {2 * len(VERSIONS)}")
    return seconds


def _nearest_rank(values: list[float], percent: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(len(ordered) * percent / 100) - 1)]


def _cached_pages(
    settings: ProxyBenchSettings, setup: _Setup, projects: list[str], report: ProxyReport
) -> None:
    gzip = {"Accept-Encoding": "gzip"} if settings.gzip else {}
    proxy_headers = {"Authorization": setup.proxy_auth, **gzip}
    private_headers = {"Authorization": setup.private_auth, **gzip}
    paths = [f"/simple/{project}/" for project in projects]
    started = time.perf_counter()
    with Http(setup.proxy.port) as http:
        for path in paths:
            if (status := http.get(path, proxy_headers).status) != 200:
                raise RuntimeError(f"proxy: GET {path} answered {status}")
    log(f"proxy: {len(paths)} pages fetched once in {time.perf_counter() - started:.1f} s")
    columns = (("proxy", proxy_headers), ("reference", private_headers))
    warm = dataclasses.replace(settings.load, duration=WARM_SECONDS)
    specs = {column: [Spec(path, headers) for path in paths] for column, headers in columns}
    for column, _ in columns:
        run_load(setup.proxy.port, specs[column], warm)
    # Two half windows each, in the order proxy, private, private, proxy: a drift of the
    # machine's speed over the measurement weighs on both alike.
    half = dataclasses.replace(settings.load, duration=settings.load.duration / 2)
    results: dict[str, list[LoadResult]] = {column: [] for column, _ in columns}
    cpu = {column: 0.0 for column, _ in columns}
    pids = setup.proxy.pids()
    for column in ("proxy", "reference", "reference", "proxy"):
        before = cpu_seconds(pids)
        results[column].append(run_load(setup.proxy.port, specs[column], half))
        cpu[column] += cpu_seconds(pids) - before
    for column, _ in columns:
        merged = _merged(results[column])
        _set_load(report, column, merged, settings.load)
        if merged.requests:
            report.set(column, "page_cpu", Cell(cpu[column] / merged.requests * 1e6))


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU time ``pids`` used so far (from /proc, in clock ticks)."""
    ticks = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def _merged(results: list[LoadResult]) -> LoadResult:
    """Windows of one load as one: counts summed; the percentiles averaged, weighted by the
    requests of each window (close to the percentile of all when the windows are alike)."""
    requests = sum(result.requests for result in results)

    def weighted(values: list[float]) -> float:
        if not requests:
            return 0.0
        pairs = zip(values, results, strict=True)
        return sum(value * result.requests for value, result in pairs) / requests

    return LoadResult(
        requests=requests,
        seconds=sum(result.seconds for result in results),
        p50_ms=weighted([result.p50_ms for result in results]),
        p99_ms=weighted([result.p99_ms for result in results]),
        errors=sum(result.errors for result in results),
        status_errors=sum(result.status_errors for result in results),
    )


def _set_load(report: ProxyReport, column: str, result: LoadResult, load: LoadSettings) -> None:
    what = "proxy page" if column == "proxy" else "private page"
    log(
        f"proxy server, {what}: {result.rps:,.0f} req/s, p50 {result.p50_ms:.2f} ms, "
        f"p99 {result.p99_ms:.2f} ms {result.problems()}"
    )
    if not result.requests:
        for key in ("page_rps", "page_p50", "page_p99"):
            report.set(column, key, Cell(text=f"none in {result.seconds:.0f} s"))
        return
    report.set(column, "page_rps", Cell(result.rps))
    report.set(column, "page_p50", Cell(result.p50_ms))
    report.set(column, "page_p99", Cell(result.p99_ms))
    if problems := result.problems():
        report.note(column, "page_rps", f"{problems} of {result.requests}")
    if result.requests < FEW_REQUESTS:
        report.note(
            column,
            "page_rps",
            f"only {result.requests} requests completed in {result.seconds:.0f} s "
            f"({load.connections} connections): a rough figure",
        )


def _downloads(setup: _Setup, bigs: list[BigFile], report: ProxyReport) -> None:
    client = download_client()
    seconds = {"direct": 0.0, "first": 0.0, "cached": 0.0}
    total = 0
    for big in bigs:
        size = big.path.stat().st_size
        path = f"/simple/{big.project}/{big.path.name}"
        with Http(setup.proxy.port) as http:
            page = http.get(f"/simple/{big.project}/", {"Authorization": setup.proxy_auth})
        if page.status != 200 or big.path.name.encode() not in page.body:
            raise RuntimeError(f"proxy: the page of {big.project} does not list {big.path.name}")
        # Untimed: an upstream's first answer with a file is slower than the next ones (by
        # ~50% here); the reference, and the proxy's own fetch, both get a warm upstream.
        fetch_file(setup.upstream.port, path, setup.upstream_auth, client)
        spent = {}
        for kind, server, authorization in (
            ("direct", setup.upstream, setup.upstream_auth),
            ("first", setup.proxy, setup.proxy_auth),
            ("cached", setup.proxy, setup.proxy_auth),
        ):
            started = time.perf_counter()
            got = fetch_file(server.port, path, authorization, client)
            spent[kind] = time.perf_counter() - started
            seconds[kind] += spent[kind]
            if got != size:
                raise RuntimeError(f"{server.name}: {path}: {got} bytes, expected {size}")
            if kind == "first":
                _check_stored(setup.proxy_root, big, size)
        total += size
        log(", ".join(f"{kind} {taken * 1e3:.0f} ms" for kind, taken in spent.items()))
    rates = {kind: total / MB / spent for kind, spent in seconds.items()}
    report.set("reference", "download_first", Cell(rates["direct"]))
    report.set("reference", "download_cached", Cell(rates["direct"]))
    report.set("proxy", "download_first", Cell(rates["first"]))
    report.set("proxy", "download_cached", Cell(rates["cached"]))
    log(
        f"proxy, {len(bigs)} downloads: first {rates['first']:,.0f} MB/s, cached "
        f"{rates['cached']:,.0f} MB/s, upstream directly {rates['direct']:,.0f} MB/s"
    )


def _check_stored(root: Path, big: BigFile, size: int) -> None:
    """The proxy's first download left the whole file in its store."""
    stored = root / "cache" / PROXY / "storage" / big.project / big.path.name
    if not stored.is_file() or stored.stat().st_size != size:
        raise RuntimeError(f"proxy: {big.path.name} was not stored whole after its download")
