"""``python -m bench``: build the corpus, run each server in turn, drive it, print the table;
then ours alone against the size of its index (``bench.scaling``).

Servers run one at a time (ours, nginx, pypiserver) so none competes with another for the
cores; the load generator does share them with the server it drives.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from bench.client import Http
from bench.console import log
from bench.corpus import VERSIONS, Corpus, ensure_corpus
from bench.load import LoadSettings, Spec, pick_generator, run_load
from bench.memory import SETTLE_SECONDS, WARM_CLIENTS, WARM_REQUESTS, idle_memory
from bench.pages import (
    Page,
    check_revalidation,
    fetch_pages,
    page_paths,
    request_headers,
    write_site,
)
from bench.proxy import ProxyBenchSettings, run_proxy
from bench.report import (
    Cell,
    ProxyReport,
    SizeReport,
    load_average,
    machine,
    markdown_table,
    proxy_table,
    scaling_table,
)
from bench.scaling import ScalingSettings, run_scaling, uploads_needed
from bench.servers import (
    Server,
    prepare_ours,
    running,
    start_nginx,
    start_ours,
    start_pypiserver,
    update_index,
)
from bench.transfer import download, upload
from bench.uploads import Prepared, prepare, upload_all
from bench.wheelsets import ensure_wheel_set

FEW_REQUESTS = 200
# A server whose single request takes longer than this share of the window gets a window
# of SLOW_WINDOW_FACTOR x the duration, so the figure rests on more than a few requests.
SLOW_SHARE = 1 / 20
SLOW_WINDOW_FACTOR = 3
DEFAULT_CACHE = Path.home() / ".cache" / "private-pypi-bench"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--sizes", default="200,2000", help="Projects per corpus (x10 files).")
    parser.add_argument("--duration", type=float, default=10.0, help="Seconds per load figure.")
    parser.add_argument("--threads", type=int, default=2, help="Load generator threads.")
    parser.add_argument("--connections", type=int, default=16, help="Concurrent connections.")
    parser.add_argument("--workers", type=int, default=2, help="Workers of every server.")
    parser.add_argument("--downloads", type=int, default=10, help="Sequential 50 MB downloads.")
    parser.add_argument(
        "--download-clients",
        type=int,
        default=4,
        help="Parallel clients, each making --downloads downloads (0: no parallel figure).",
    )
    parser.add_argument("--download-mb", type=int, default=50, help="Size of the download file.")
    parser.add_argument("--upload-mb", type=int, default=1000, help="Size of the upload (MB).")
    parser.add_argument(
        "--small-uploads", type=int, default=1000, help="Small wheels uploaded (0: none)."
    )
    parser.add_argument("--upload-threads", type=int, default=8, help="Concurrent uploaders.")
    parser.add_argument(
        "--upload-window",
        type=float,
        default=60.0,
        help="Seconds after which no new small upload starts (the rest are footnoted).",
    )
    parser.add_argument(
        "--upload-index-sizes",
        default="0,10000,100000",
        help="Files already in ours' index when the upload cost is measured.",
    )
    parser.add_argument(
        "--uploads-per-thread",
        type=int,
        default=25,
        help="Files each concurrent uploader sends, per index size.",
    )
    parser.add_argument(
        "--no-upload-scaling", action="store_true", help="Skip the upload cost per index size."
    )
    parser.add_argument(
        "--no-proxy", action="store_true", help="Skip the proxy repository's figures."
    )
    parser.add_argument(
        "--proxy-projects", type=int, default=200, help="Projects of the proxy's corpus."
    )
    parser.add_argument(
        "--proxy-first-fetches",
        type=int,
        default=50,
        help="Projects whose first fetch through the proxy is timed.",
    )
    parser.add_argument(
        "--proxy-downloads",
        type=int,
        default=3,
        help="Distinct big wheels downloaded directly and through the proxy (twice).",
    )
    parser.add_argument("--loadgen", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--gzip", action="store_true", help="Send Accept-Encoding: gzip.")
    parser.add_argument("--no-nginx", action="store_true", help="Skip the nginx ceiling.")
    parser.add_argument("--no-pypiserver", action="store_true", help="Skip pypiserver.")
    parser.add_argument(
        "--pypiserver-upload",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Also upload the big file to pypiserver.",
    )
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="Corpus cache folder.")
    parser.add_argument("--workdir", type=Path, default=None, help="Parent of the temp folders.")
    parser.add_argument("--keep", action="store_true", help="Keep the temp folders.")
    parser.add_argument("--output", type=Path, help="Also write the Markdown report here.")
    return parser.parse_args(argv)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


class SizeRun:
    """Every measurement of one corpus size."""

    def __init__(
        self, args: argparse.Namespace, corpus: Corpus, small: list[Prepared], work: Path
    ) -> None:
        self.args = args
        self.corpus = corpus
        self.small = small
        self.work = work
        self.settings = LoadSettings(
            pick_generator(args.loadgen), args.threads, args.connections, args.duration
        )
        self.paths = page_paths(corpus.projects)
        files = sum(1 for _ in corpus.files())
        self.report = SizeReport(
            projects=len(corpus.projects),
            files=files,
            download_mb=args.download_mb,
            upload_mb=args.upload_mb,
            download_clients=args.download_clients,
            small_uploads=len(small),
            upload_threads=args.upload_threads,
        )
        self.pages: list[Page] = []
        self.password = "bench-read-secret"  # ours' read secret, once known: one for all

    def run(self) -> SizeReport:
        self.report.remarks.append(f"load average before this size: {load_average()}")
        steps = [("ours", self.ours)]
        for name, step, skip in (
            ("nginx", self.nginx, self.args.no_nginx),
            ("pypiserver", self.pypiserver, self.args.no_pypiserver),
        ):
            if skip:
                self.report.remarks.append(f"{name} skipped (--no-{name}).")
            else:
                steps.append((name, step))
        for name, step in steps:
            try:
                step()
            except Exception as error:  # one server failing must not lose the others' figures
                log(f"{name} failed: {error}")
                self.report.remarks.append(f"{name} failed: {error}")
        return self.report

    def ours(self) -> None:
        big = self.corpus.download
        setup = prepare_ours(self.work / "ours", [*self.corpus.files(), (big.project, big.path)])
        seconds = update_index(setup)
        log(f"update_index: {self.report.files + 1} files in {seconds:.2f} s")
        self.report.set("ours", "update_index", Cell(seconds))
        seconds = update_index(setup)
        log(f"update_index again, nothing changed: {seconds:.2f} s")
        self.report.set("ours", "update_index_again", Cell(seconds))
        self.password = setup.read_secret
        with running(lambda: start_ours(setup, self.args.workers, big)) as server:
            self.memory(server)
            headers = request_headers(server, self.args.gzip)
            self.pages = fetch_pages(server, self.paths, headers)
            self.measure(server)
            self.upload(server, setup.write_secret)
            self.small_uploads(server, setup.write_secret)

    def nginx(self) -> None:
        if shutil.which("nginx") is None:
            self.report.remarks.append("nginx is not installed: no ceiling figures.")
            return
        if not self.pages:
            raise RuntimeError("no pages from our server to serve")
        site = self.work / "nginx" / "site"
        download_path = f"/simple/{self.corpus.download.project}/{self.corpus.download.path.name}"
        write_site(site, self.pages, self.corpus.download, download_path)
        with running(
            lambda: start_nginx(
                self.work / "nginx", site, download_path, self.args.workers, self.password
            )
        ) as server:
            self.memory(server)
            self.measure(server)
        uploads = ["upload_s", "upload_rss", "upload_growth"]
        if self.small:
            uploads += ["small_uploads", "small_uploads_failed"]
        for key in uploads:
            self.report.set("nginx", key, Cell(text="n/a"))

    def pypiserver(self) -> None:
        with running(
            lambda: start_pypiserver(
                self.work / "pypiserver", self.corpus, self.args.workers, self.password
            )
        ) as server:
            self.memory(server)
            self.measure(server)
            if self.args.pypiserver_upload:
                self.upload(server, self.password)
            else:
                self.report.set("pypiserver", "upload_s", Cell(text="skipped"))
            self.small_uploads(server, self.password)

    def memory(self, server: Server) -> None:
        """The idle tree, right after the start and a few page requests."""
        memory = idle_memory(server, self.paths[:4])
        log(
            f"{server.name} idle: RSS {memory.rss_mb:.0f} MB, PSS {memory.pss_mb:.0f} MB "
            f"({memory.processes} processes)"
        )
        self.report.set(server.name, "idle_rss", Cell(memory.rss_mb))
        self.report.set(server.name, "idle_pss", Cell(memory.pss_mb))
        if memory.processes != self.args.workers + 1:
            self.report.note(
                server.name, "idle_rss", f"{memory.processes} processes, not master + workers"
            )

    def measure(self, server: Server) -> None:
        """Cold start, the three page loads and the downloads of one running server."""
        self.report.set(server.name, "cold_start", Cell(server.cold_start))
        headers = request_headers(server, self.args.gzip)
        self.load(server, "root", [Spec("/simple/", headers)])
        self.load(server, "project", [Spec(path, headers) for path in self.paths[1:]])
        self.revalidation(server, headers)
        size = self.corpus.download.path.stat().st_size
        result = download(server, size, self.args.downloads)
        log(f"{server.name}: {result.count} downloads at {result.mb_per_s:,.0f} MB/s")
        self.report.set(server.name, "download", Cell(result.mb_per_s))
        if self.args.download_clients > 0:
            clients = self.args.download_clients
            result = download(server, size, self.args.downloads, clients)
            log(
                f"{server.name}: {result.count} downloads, {clients} clients at once, "
                f"{result.mb_per_s:,.0f} MB/s"
            )
            self.report.set(server.name, "download_parallel", Cell(result.mb_per_s))

    def load(self, server: Server, prefix: str, specs: list[Spec]) -> None:
        settings = self.settings
        single = _time_one(server, random.choice(specs))
        if single > settings.duration * SLOW_SHARE:
            settings = dataclasses.replace(
                settings, duration=settings.duration * SLOW_WINDOW_FACTOR
            )
            self.report.note(
                server.name,
                f"{prefix}_rps",
                f"one request alone took {single:.2f} s: window extended to "
                f"{settings.duration:g} s",
            )
        result = run_load(server.port, specs, settings)
        log(
            f"{server.name} {prefix}: {result.rps:,.0f} req/s, p50 {result.p50_ms:.2f} ms, "
            f"p99 {result.p99_ms:.2f} ms {result.problems()}"
        )
        if result.requests:
            self.report.set(server.name, f"{prefix}_rps", Cell(result.rps))
            self.report.set(server.name, f"{prefix}_p50", Cell(result.p50_ms))
            self.report.set(server.name, f"{prefix}_p99", Cell(result.p99_ms))
        else:
            none = Cell(text=f"none in {result.seconds:.0f} s")
            for suffix in ("rps", "p50", "p99"):
                self.report.set(server.name, f"{prefix}_{suffix}", none)
        if problems := result.problems():
            self.report.note(server.name, f"{prefix}_rps", f"{problems} of {result.requests}")
        if result.requests < FEW_REQUESTS:
            self.report.note(
                server.name,
                f"{prefix}_rps",
                f"only {result.requests} requests completed in {result.seconds:.0f} s "
                f"({self.settings.connections} connections): a rough figure",
            )

    def revalidation(self, server: Server, headers: dict[str, str]) -> None:
        """304 load with each page's own ETag, when the server sends ETags and honours them."""
        probe = fetch_pages(server, self.paths[1:2], headers)[0]
        if probe.etag is None:
            self.report.set(server.name, "reval_rps", Cell(text="no ETag"))
            return
        status = check_revalidation(server, probe, headers)
        if status != 304:
            self.report.set(server.name, "reval_rps", Cell(text=f"ETag, but {status}"))
            return
        pages = self.pages if server.name == "ours" else fetch_pages(server, self.paths, headers)
        specs = [
            Spec(page.path, {**headers, "If-None-Match": page.etag})
            for page in pages[1:]
            if page.etag is not None
        ]
        self.load(server, "reval", specs)

    def upload(self, server: Server, password: str) -> None:
        big = self.corpus.upload
        log(f"{server.name}: uploading {big.path.stat().st_size / 1e6:,.0f} MB")
        result = upload(server, password, big)
        log(f"{server.name}: upload {result.seconds:.2f} s, peak RSS {result.rss_peak_mb:.0f} MB")
        self.report.set(server.name, "upload_s", Cell(result.seconds))
        self.report.set(server.name, "upload_rss", Cell(result.rss_peak_mb))
        growth = result.rss_peak_mb - result.rss_before_mb
        self.report.set(server.name, "upload_growth", Cell(growth))
        self.report.remarks.append(
            f"{server.name}: RSS summed over {result.processes} processes (shared pages count "
            f"in each), {result.rss_before_mb:.0f} MB before the upload."
        )

    def small_uploads(self, server: Server, password: str) -> None:
        """The small wheels, from ``--upload-threads`` uploaders at once."""
        if not self.small:
            return
        result = upload_all(
            server, password, self.small, self.args.upload_threads, self.args.upload_window
        )
        log(
            f"{server.name}: {len(self.small)} small uploads, {result.per_second:.1f}/s, "
            f"{result.failed} failed {result.problems()}"
        )
        self.report.set(server.name, "small_uploads", Cell(result.per_second))
        self.report.set(server.name, "small_uploads_failed", Cell(result.failed))
        if result.failed:
            self.report.note(server.name, "small_uploads_failed", result.problems())
        if result.unsent:
            self.report.note(
                server.name,
                "small_uploads",
                f"{result.unsent} not sent: the window closed after {self.args.upload_window:g} s",
            )


def _time_one(server: Server, spec: Spec) -> float:
    """Seconds one request takes on an idle server (it must succeed)."""
    with Http(server.port, timeout=300) as http:
        started = time.perf_counter()
        status = http.get(spec.path, spec.headers).status
        seconds = time.perf_counter() - started
    if not 200 <= status < 400:
        raise RuntimeError(f"{server.name}: GET {spec.path} answered {status}")
    return seconds


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    sizes = [int(size) for size in args.sizes.split(",") if size.strip()]
    scaling = None
    if not args.no_upload_scaling:
        scaling = ScalingSettings(
            sizes=[int(size) for size in args.upload_index_sizes.split(",") if size.strip()],
            workers=args.workers,
            threads=args.upload_threads,
            per_thread=args.uploads_per_thread,
            window=args.upload_window,
            cache=args.cache,
        )
    generator = pick_generator(args.loadgen)
    header = _header(args, generator, scaling)
    for line in header:
        log(line)
    sections = []
    try:
        started = time.perf_counter()
        count = max(args.small_uploads, uploads_needed(scaling) if scaling else 0)
        small = prepare(ensure_wheel_set(args.cache, "small", count).wheels())
        log(f"{count} small wheels ready in {time.perf_counter() - started:.1f} s")
        for size in sizes:
            started = time.perf_counter()
            corpus = ensure_corpus(args.cache, size, args.download_mb, args.upload_mb)
            log(f"corpus of {size} projects ready in {time.perf_counter() - started:.1f} s")
            with _workdir(args, f"private-pypi-bench-{size}-") as work:
                report = SizeRun(args, corpus, small[: args.small_uploads], work).run()
            sections.append(markdown_table(report))
            log(f"{size} projects done in {time.perf_counter() - started:.0f} s\n{sections[-1]}")
        if not args.no_proxy:
            started = time.perf_counter()
            sections.append(proxy_table(_proxy(args)))
            log(f"proxy done in {time.perf_counter() - started:.0f} s\n{sections[-1]}")
        if scaling:
            started = time.perf_counter()
            with _workdir(args, "private-pypi-bench-uploads-") as work:
                sections.append(scaling_table(run_scaling(scaling, small, work)))
            log(f"upload cost done in {time.perf_counter() - started:.0f} s\n{sections[-1]}")
    except KeyboardInterrupt:
        log("interrupted: every server was stopped")
        sys.exit(130)
    text = "\n".join(["## Benchmark", "", *(f"- {line}" for line in header), "", *sections])
    print(text, flush=True)
    if args.output:
        args.output.write_text(text)
        log(f"wrote {args.output}")


def _proxy(args: argparse.Namespace) -> ProxyReport:
    """The proxy's figures; its setup failing is a remark of an empty table."""
    corpus = ensure_corpus(args.cache, args.proxy_projects, args.download_mb, args.upload_mb)
    settings = ProxyBenchSettings(
        first_fetches=args.proxy_first_fetches,
        downloads=args.proxy_downloads,
        download_mb=args.download_mb,
        workers=args.workers,
        load=LoadSettings(
            pick_generator(args.loadgen), args.threads, args.connections, args.duration
        ),
        gzip=args.gzip,
        cache=args.cache,
    )
    with _workdir(args, "private-pypi-bench-proxy-") as work:
        try:
            return run_proxy(settings, corpus, work)
        except Exception as error:
            log(f"proxy failed: {error}")
            report = ProxyReport(
                projects=args.proxy_projects,
                first_fetches=args.proxy_first_fetches,
                download_mb=args.download_mb,
            )
            report.remarks.append(f"failed: {error}")
            return report


@contextmanager
def _workdir(args: argparse.Namespace, prefix: str) -> Iterator[Path]:
    """A temp folder, removed afterwards unless ``--keep``."""
    work = Path(tempfile.mkdtemp(prefix=prefix, dir=args.workdir))
    try:
        yield work
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def _header(args: argparse.Namespace, generator: str, scaling: ScalingSettings | None) -> list[str]:
    load = (
        f"load: {generator}, {args.threads} threads, {args.connections} connections, "
        f"{args.duration:g} s per figure, on the same cores as the server"
    )
    if generator == "python":
        load += " (its own ceiling applies: see bench/README.md)"
    lines = [
        *machine(),
        load + ("; Accept-Encoding: gzip" if args.gzip else "; no Accept-Encoding"),
        f"every server: {args.workers} workers, 127.0.0.1, HTTP basic auth on every request; "
        f"corpus: {len(VERSIONS)} versions x (wheel + sdist) per project",
        "ours: `private_pypi server` (gunicorn + uvicorn workers); pypiserver: gunicorn sync "
        "workers, `-a download,list,update -P htpasswd` ({SHA} entry), files flat in one "
        "folder, default backend; nginx: our pages as static files, `auth_basic` ({SHA})",
        f"downloads: {args.downloads} sequential GETs of a {args.download_mb} MB wheel, then "
        f"{args.download_clients} clients at once making as many each; upload: one "
        f"{args.upload_mb} MB wheel, multipart, streamed; RSS sampled every 50 ms",
        f"small uploads: {args.small_uploads} distinct wheels of ~3 KB (10 versions per "
        f"project), twine's form, from {args.upload_threads} threads on keep-alive "
        f"connections, none started after {args.upload_window:g} s",
        "idle memory: /proc/<pid>/smaps_rollup summed over master and workers "
        f"{SETTLE_SECONDS:g} s after {WARM_CLIENTS * WARM_REQUESTS} page requests",
        "ratios are ours ÷ other: above 1 is better for req/s and MB/s, below 1 for ms, s, MB",
    ]
    if not args.no_proxy:
        lines.append(
            f"proxy (ours, a pull-through cache of ours): {args.proxy_projects} projects, "
            f"{args.proxy_first_fetches} first fetches timed, {args.proxy_downloads} x "
            f"{args.download_mb} MB first downloads"
        )
    if scaling:
        lines.append(
            f"upload cost (ours alone): a fresh store of N small wheels per size, indexed once "
            f"by `update_index`; then {scaling.threads} x {scaling.per_thread} new wheels"
        )
    return lines
