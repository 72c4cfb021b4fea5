"""Upload cost against the size of the index, ours only.

For each size N: a store holding N small wheels (``bench.wheelsets``, hard-linked into the
storage folder as an operator's copy would leave them), indexed once by ``update_index``
(timed), and the server's cold start on it. Then new files are uploaded: a few alone, one
at a time (their median), and many from concurrent uploaders (uploads/s and failures).
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from bench.console import log
from bench.report import Cell, ScalingReport
from bench.servers import prepare_ours, running, start_ours, update_index
from bench.uploads import Prepared, UploadsResult, upload_all
from bench.wheelsets import ensure_wheel_set

SINGLES = 5


@dataclass(frozen=True)
class ScalingSettings:
    sizes: list[int]
    workers: int
    threads: int
    per_thread: int
    window: float
    cache: Path


def uploads_needed(settings: ScalingSettings) -> int:
    """How many distinct new files one index size uploads."""
    return SINGLES + settings.threads * settings.per_thread


def run_scaling(settings: ScalingSettings, uploads: list[Prepared], work: Path) -> ScalingReport:
    """Every index size in turn, each on a fresh repository; a failing size is a remark."""
    report = ScalingReport(
        singles=SINGLES, threads=settings.threads, per_thread=settings.per_thread
    )
    for size in settings.sizes:
        try:
            _one_size(settings, size, uploads, report, work / f"index-{size}")
        except Exception as error:  # one size failing must not lose the others' figures
            log(f"index of {size:,} files failed: {error}")
            report.remarks.append(f"{size:,} files: failed: {error}")
        finally:
            shutil.rmtree(work / f"index-{size}", ignore_errors=True)
    return report


def _one_size(
    settings: ScalingSettings,
    size: int,
    uploads: list[Prepared],
    report: ScalingReport,
    work: Path,
) -> None:
    started = time.perf_counter()
    wheels = ensure_wheel_set(settings.cache, "index", size).wheels()
    log(f"{size:,} wheels for the store ready in {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    setup = prepare_ours(work, ((wheel.project, wheel.path) for wheel in wheels))
    log(f"store of {size:,} files linked in {time.perf_counter() - started:.1f} s")
    seconds = update_index(setup)
    log(f"update_index: {size:,} files in {seconds:.2f} s")
    report.set(size, "update_index", Cell(seconds))
    with running(lambda: start_ours(setup, settings.workers)) as server:
        report.set(size, "cold_start", Cell(server.cold_start))
        singles = upload_all(
            server, setup.write_secret, uploads[:SINGLES], threads=1, window=settings.window
        )
        log(f"{size:,} files: one upload alone, median {singles.median_ms:.1f} ms")
        report.set(size, "single_upload", Cell(singles.median_ms))
        _remark_failures(report, size, "one at a time", singles, settings.window)
        concurrent = upload_all(
            server,
            setup.write_secret,
            uploads[SINGLES : uploads_needed(settings)],
            settings.threads,
            settings.window,
        )
        log(
            f"{size:,} files: {settings.threads} uploaders, {concurrent.per_second:.1f} uploads/s, "
            f"{concurrent.failed} failed {concurrent.problems()}"
        )
        report.set(size, "concurrent_rate", Cell(concurrent.per_second))
        report.set(size, "concurrent_failed", Cell(concurrent.failed))
        _remark_failures(report, size, f"{settings.threads} uploaders", concurrent, settings.window)


def _remark_failures(
    report: ScalingReport, size: int, what: str, result: UploadsResult, window: float
) -> None:
    if result.failed:
        report.remarks.append(f"{size:,} files, {what}: {result.problems()}.")
    if result.unsent:
        report.remarks.append(
            f"{size:,} files, {what}: {result.unsent} not sent, the window closed after "
            f"{window:g} s."
        )
