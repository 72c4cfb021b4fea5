"""The results table (Markdown, aligned so it also reads as plain text) and the machine."""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from importlib import metadata


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    unit: str  # "rps", "ms", "us", "s", "mbps", "mb" or "n" (a count): how to format it
    higher_is_better: bool
    ratio: bool = True  # False where a quotient means nothing (counts of failures)


METRICS = [
    Metric("update_index", "load corpus: `update_index` (s)", "s", False),
    Metric("update_index_again", "`update_index` again, nothing changed (s)", "s", False),
    Metric("cold_start", "cold start to first 200 on `/simple/` (s)", "s", False),
    Metric("idle_rss", "idle, after a few requests: RSS, master + workers (MB)", "mb", False),
    Metric("idle_pss", "idle, after a few requests: PSS, master + workers (MB)", "mb", False),
    Metric("root_rps", "`/simple/` req/s", "rps", True),
    Metric("root_p50", "`/simple/` p50 (ms)", "ms", False),
    Metric("root_p99", "`/simple/` p99 (ms)", "ms", False),
    Metric("project_rps", "`/simple/<random project>/` req/s", "rps", True),
    Metric("project_p50", "`/simple/<random project>/` p50 (ms)", "ms", False),
    Metric("project_p99", "`/simple/<random project>/` p99 (ms)", "ms", False),
    Metric("reval_rps", "304 revalidation (If-None-Match) req/s", "rps", True),
    Metric("reval_p50", "304 revalidation p50 (ms)", "ms", False),
    Metric("reval_p99", "304 revalidation p99 (ms)", "ms", False),
    Metric("download", "{download} MB download (MB/s)", "mbps", True),
    Metric(
        "download_parallel",
        "{download} MB download, {clients} parallel clients (MB/s, total)",
        "mbps",
        True,
    ),
    Metric("upload_s", "{upload} MB upload (s)", "s", False),
    Metric("upload_rss", "{upload} MB upload: peak RSS, master + workers (MB)", "mb", False),
    Metric("upload_growth", "{upload} MB upload: RSS growth, peak - before (MB)", "mb", False),
    Metric("small_uploads", "{small:,} small uploads, {threads} threads (uploads/s)", "rps", True),
    Metric(
        "small_uploads_failed",
        "{small:,} small uploads: failed (not 2xx, or no answer)",
        "n",
        False,
        ratio=False,
    ),
]
SCALING_METRICS = [
    Metric("update_index", "`update_index` of the store (s)", "s", False),
    Metric("cold_start", "cold start to first 200 on `/simple/` (s)", "s", False),
    Metric("single_upload", "one upload alone: median of {singles} (ms)", "ms", False),
    Metric(
        "concurrent_rate",
        "{threads} uploaders at once, {per_thread} files each (uploads/s)",
        "rps",
        True,
    ),
    Metric(
        "concurrent_failed",
        "{threads} uploaders at once: failed (not 2xx, or no answer)",
        "n",
        False,
        ratio=False,
    ),
]
PROXY_METRICS = [
    Metric(
        "page_rps", "cached page vs private page: `/simple/<random project>/` req/s", "rps", True
    ),
    Metric("page_p50", "cached page vs private page: p50 (ms)", "ms", False),
    Metric("page_p99", "cached page vs private page: p99 (ms)", "ms", False),
    Metric("page_cpu", "cached page vs private page: server CPU per request (µs)", "us", False),
    Metric(
        "first_p50",
        "first fetch of a page vs the upstream's own answer, {first} projects: median (ms)",
        "ms",
        False,
    ),
    Metric(
        "first_p90", "first fetch of a page vs the upstream's own answer: p90 (ms)", "ms", False
    ),
    Metric(
        "download_first",
        "{download} MB first download, streamed while cached, vs the upstream directly (MB/s)",
        "mbps",
        True,
    ),
    Metric(
        "download_cached",
        "{download} MB second download, from the cache, vs the upstream directly (MB/s)",
        "mbps",
        True,
    ),
]
PROXY_COLUMNS = ["proxy", "reference"]
SERVERS = ["ours", "pypiserver", "nginx"]


@dataclass(frozen=True)
class Cell:
    """A figure, or ``value=None`` and why there is none (``text``)."""

    value: float | None = None
    text: str = ""


@dataclass
class SizeReport:
    """The cells of one corpus size: ``cells[server][metric key]``, and footnotes."""

    projects: int
    files: int
    download_mb: int
    upload_mb: int
    download_clients: int
    small_uploads: int
    upload_threads: int
    cells: dict[str, dict[str, Cell]] = field(
        default_factory=lambda: {server: {} for server in SERVERS}
    )
    notes: list[str] = field(default_factory=list)
    marked: set[tuple[str, str]] = field(default_factory=set)
    remarks: list[str] = field(default_factory=list)

    def set(self, server: str, key: str, cell: Cell) -> None:
        self.cells[server][key] = cell

    def note(self, server: str, key: str, text: str) -> None:
        """Footnote a cell (errors under load, skipped measurements...)."""
        self.marked.add((server, key))
        self.notes.append(f"{server}, {self.label(key)}: {text}")

    def label(self, key: str) -> str:
        label = next(metric.label for metric in METRICS if metric.key == key)
        return label.format(
            download=self.download_mb,
            upload=self.upload_mb,
            clients=self.download_clients,
            small=self.small_uploads,
            threads=self.upload_threads,
        )


@dataclass
class ScalingReport:
    """Upload cost against index size, ours only: ``cells[files in the index][metric key]``."""

    singles: int
    threads: int
    per_thread: int
    cells: dict[int, dict[str, Cell]] = field(default_factory=dict)
    remarks: list[str] = field(default_factory=list)

    def set(self, files: int, key: str, cell: Cell) -> None:
        self.cells.setdefault(files, {})[key] = cell

    def label(self, metric: Metric) -> str:
        return metric.label.format(
            singles=self.singles, threads=self.threads, per_thread=self.per_thread
        )


@dataclass
class ProxyReport:
    """A proxy repository against what it stands in for: ``cells[column][metric key]``, the
    columns being ``proxy`` and ``reference`` (the private page, or the upstream directly)."""

    projects: int
    first_fetches: int
    download_mb: int
    cells: dict[str, dict[str, Cell]] = field(
        default_factory=lambda: {column: {} for column in PROXY_COLUMNS}
    )
    notes: list[str] = field(default_factory=list)
    marked: set[tuple[str, str]] = field(default_factory=set)
    remarks: list[str] = field(default_factory=list)

    def set(self, column: str, key: str, cell: Cell) -> None:
        self.cells[column][key] = cell

    def note(self, column: str, key: str, text: str) -> None:
        self.marked.add((column, key))
        self.notes.append(f"{column}, {self.label(key)}: {text}")

    def label(self, key: str) -> str:
        label = next(metric.label for metric in PROXY_METRICS if metric.key == key)
        return label.format(first=self.first_fetches, download=self.download_mb)


def _format(value: float, unit: str) -> str:
    if unit == "rps":
        return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"
    if unit == "ms":
        return f"{value:.2f}" if value < 100 else f"{value:,.0f}"
    if unit == "s":
        return f"{value:.2f}" if value < 100 else f"{value:,.0f}"
    if unit in ("n", "us"):
        return f"{value:,.0f}"
    return f"{value:,.0f}" if value >= 10 else f"{value:.1f}"


def _cell_text(cell: Cell | None, unit: str, mark: bool) -> str:
    if cell is None:
        return "—"
    text = _format(cell.value, unit) if cell.value is not None else cell.text
    return text + (" *" if mark else "")


def _ratio(ours: Cell | None, other: Cell | None) -> str:
    if ours is None or other is None or ours.value is None or other.value is None:
        return ""
    if other.value == 0:
        return ""
    ratio = ours.value / other.value
    if ratio >= 100:
        return f"{ratio:,.0f}x"
    return f"{ratio:.2f}x" if ratio >= 0.1 else f"{ratio:.2g}x"


def markdown_table(report: SizeReport) -> str:
    header = ["metric", "ours", "pypiserver", "ours/pypiserver", "nginx", "ours/nginx"]
    rows = [header]
    for metric in METRICS:
        ours, pypi, nginx = (report.cells[server].get(metric.key) for server in SERVERS)
        if ours is None and pypi is None and nginx is None:
            continue
        ours_text, pypi_text, nginx_text = (
            _cell_text(cell, metric.unit, (server, metric.key) in report.marked)
            for server, cell in zip(SERVERS, (ours, pypi, nginx), strict=True)
        )
        pypi_ratio, nginx_ratio = (
            _ratio(ours, other) if metric.ratio else "" for other in (pypi, nginx)
        )
        row = [report.label(metric.key), ours_text, pypi_text, pypi_ratio]
        rows.append([*row, nginx_text, nginx_ratio])
    title = f"### {report.projects} projects, {report.files} files"
    footnotes = [f"- \\* {note}" for note in report.notes]
    footnotes += [f"- {remark}" for remark in report.remarks]
    return _section(title, rows, footnotes)


def scaling_table(report: ScalingReport) -> str:
    """One column per index size, in the order measured."""
    sizes = list(report.cells)
    rows = [["metric (ours)", *(f"{size:,} files" for size in sizes)]]
    for metric in SCALING_METRICS:
        cells = [report.cells[size].get(metric.key) for size in sizes]
        rows.append(
            [report.label(metric), *(_cell_text(cell, metric.unit, False) for cell in cells)]
        )
    title = "### Upload cost against the size of the index (ours)"
    return _section(title, rows, [f"- {remark}" for remark in report.remarks])


def proxy_table(report: ProxyReport) -> str:
    """The proxy's figures beside their references, their quotient and, for latencies, the
    difference (what the proxy adds)."""
    header = ["metric", "proxy", "reference", "proxy/reference", "proxy - reference"]
    rows = [header]
    for metric in PROXY_METRICS:
        proxy, reference = (report.cells[column].get(metric.key) for column in PROXY_COLUMNS)
        if proxy is None and reference is None:
            continue
        texts = [
            _cell_text(cell, metric.unit, (column, metric.key) in report.marked)
            for column, cell in zip(PROXY_COLUMNS, (proxy, reference), strict=True)
        ]
        difference = ""
        values = (proxy.value if proxy else None, reference.value if reference else None)
        if metric.unit in ("ms", "us") and values[0] is not None and values[1] is not None:
            difference = (
                f"{values[0] - values[1]:+.2f} ms"
                if metric.unit == "ms"
                else f"{values[0] - values[1]:+,.0f} µs"
            )
        rows.append([report.label(metric.key), *texts, _ratio(proxy, reference), difference])
    title = f"### Proxy repository (pull-through cache of ours), {report.projects} projects"
    footnotes = [f"- \\* {note}" for note in report.notes]
    footnotes += [f"- {remark}" for remark in report.remarks]
    return _section(title, rows, footnotes)


def _section(title: str, rows: list[list[str]], footnotes: list[str]) -> str:
    """``title``, the table of ``rows`` (the first is the header) and the footnotes."""
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = [_row(row, widths) for row in rows]
    rule = ["-" * widths[0], *("-" * (width - 1) + ":" for width in widths[1:])]
    lines.insert(1, _row(rule, widths))
    return "\n".join([title, "", *lines, *(["", *footnotes] if footnotes else [])]) + "\n"


def _row(cells: list[str], widths: list[int]) -> str:
    padded = [cells[0].ljust(widths[0])]
    padded += [text.rjust(width) for text, width in zip(cells[1:], widths[1:], strict=True)]
    return "| " + " | ".join(padded) + " |"


def load_average() -> str:
    with open("/proc/loadavg") as loadavg:
        return " ".join(loadavg.read().split()[:3])


def machine() -> list[str]:
    """nproc, CPU model, memory, kernel, Python, load average, and the tools' versions."""
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            match = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read(), re.MULTILINE)
            cpu = match.group(1).strip() if match else cpu
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return [
        f"nproc {len(os.sched_getaffinity(0))} ({os.cpu_count()} online), {cpu}, "
        f"{memory:.0f} GiB RAM, Linux {platform.release()}",
        f"Python {platform.python_version()}; load average at start {load_average()}",
        "versions: " + ", ".join(_versions()),
    ]


def _versions() -> list[str]:
    found = []
    for dist in ("private-pypi-core", "pypiserver", "gunicorn", "uvicorn", "falcon"):
        try:
            found.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            found.append(f"{dist} not installed")
    for tool, argv in (("nginx", ["nginx", "-v"]), ("wrk", ["wrk", "--version"])):
        if shutil.which(tool) is None:
            found.append(f"{tool} not installed")
            continue
        done = subprocess.run(argv, capture_output=True, text=True)
        match = re.search(r"(\d+\.\d+(\.\d+)?)", done.stdout + done.stderr)
        found.append(f"{tool} {match.group(1) if match else '?'}")
    return found
