"""``python -m bench``: build the corpus, run each server in turn, drive it, print the table.

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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from bench.client import Http
from bench.corpus import VERSIONS, Corpus, ensure_corpus
from bench.load import LoadSettings, Spec, pick_generator, run_load
from bench.pages import (
    Page,
    check_revalidation,
    fetch_pages,
    page_paths,
    request_headers,
    write_site,
)
from bench.report import Cell, SizeReport, load_average, machine, markdown_table
from bench.servers import Server, prepare_ours, start_nginx, start_ours, start_pypiserver
from bench.transfer import download, upload

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
    parser.add_argument("--download-mb", type=int, default=50, help="Size of the download file.")
    parser.add_argument("--upload-mb", type=int, default=1000, help="Size of the upload (MB).")
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


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextmanager
def running(start: Callable[[], Server]) -> Iterator[Server]:
    """A started server, stopped (its whole process group) however the block ends."""
    server = start()
    log(f"{server.name} up on port {server.port} (cold start {server.cold_start:.2f} s)")
    try:
        yield server
    finally:
        server.stop()


class SizeRun:
    """Every measurement of one corpus size."""

    def __init__(self, args: argparse.Namespace, corpus: Corpus, work: Path) -> None:
        self.args = args
        self.corpus = corpus
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
        setup = prepare_ours(self.work / "ours", self.corpus)
        log(f"update_index: {self.report.files + 1} files in {setup.update_index_seconds:.2f} s")
        self.report.set("ours", "update_index", Cell(setup.update_index_seconds))
        log(f"update_index again, nothing changed: {setup.update_index_unchanged_seconds:.2f} s")
        self.report.set("ours", "update_index_again", Cell(setup.update_index_unchanged_seconds))
        self.password = setup.read_secret
        with running(lambda: start_ours(setup, self.corpus, self.args.workers)) as server:
            headers = request_headers(server, self.args.gzip)
            self.pages = fetch_pages(server, self.paths, headers)
            self.measure(server)
            self.upload(server, setup.write_secret)

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
            self.measure(server)
        self.report.set("nginx", "upload_s", Cell(text="n/a"))
        self.report.set("nginx", "upload_rss", Cell(text="n/a"))
        self.report.set("nginx", "upload_growth", Cell(text="n/a"))

    def pypiserver(self) -> None:
        with running(
            lambda: start_pypiserver(
                self.work / "pypiserver", self.corpus, self.args.workers, self.password
            )
        ) as server:
            self.measure(server)
            if self.args.pypiserver_upload:
                self.upload(server, self.password)
            else:
                self.report.set("pypiserver", "upload_s", Cell(text="skipped"))

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
    generator = pick_generator(args.loadgen)
    header = _header(args, generator)
    for line in header:
        log(line)
    sections = []
    try:
        for size in sizes:
            started = time.perf_counter()
            corpus = ensure_corpus(args.cache, size, args.download_mb, args.upload_mb)
            log(f"corpus of {size} projects ready in {time.perf_counter() - started:.1f} s")
            work = Path(tempfile.mkdtemp(prefix=f"private-pypi-bench-{size}-", dir=args.workdir))
            try:
                report = SizeRun(args, corpus, work).run()
            finally:
                if args.keep:
                    log(f"kept {work}")
                else:
                    shutil.rmtree(work, ignore_errors=True)
            sections.append(markdown_table(report))
            log("\n" + sections[-1])
    except KeyboardInterrupt:
        log("interrupted: every server was stopped")
        sys.exit(130)
    text = "\n".join(["## Benchmark", "", *(f"- {line}" for line in header), "", *sections])
    print(text, flush=True)
    if args.output:
        args.output.write_text(text)
        log(f"wrote {args.output}")


def _header(args: argparse.Namespace, generator: str) -> list[str]:
    load = (
        f"load: {generator}, {args.threads} threads, {args.connections} connections, "
        f"{args.duration:g} s per figure, on the same cores as the server"
    )
    if generator == "python":
        load += " (its own ceiling applies: see bench/README.md)"
    return [
        *machine(),
        load + ("; Accept-Encoding: gzip" if args.gzip else "; no Accept-Encoding"),
        f"every server: {args.workers} workers, 127.0.0.1, HTTP basic auth on every request; "
        f"corpus: {len(VERSIONS)} versions x (wheel + sdist) per project",
        "ours: `private_pypi server` (gunicorn + uvicorn workers); pypiserver: gunicorn sync "
        "workers, `-a download,list,update -P htpasswd` ({SHA} entry), files flat in one "
        "folder, default backend; nginx: our pages as static files, `auth_basic` ({SHA})",
        f"downloads: {args.downloads} sequential GETs of a {args.download_mb} MB wheel; upload: "
        f"one {args.upload_mb} MB wheel, multipart, streamed; RSS sampled every 50 ms",
        "ratios are ours ÷ other: above 1 is better for req/s and MB/s, below 1 for ms, s, MB",
    ]
