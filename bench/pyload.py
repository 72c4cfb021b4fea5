"""The fallback load generator when wrk is missing: asyncio, raw keep-alive sockets.

``threads`` processes (like wrk's threads) each run ``connections / threads`` connections
in one event loop. Bounded by the duration and by ``MAX_REQUESTS`` per process. Its own
ceiling is far below wrk's (see bench/README.md): a server faster than it measures as it.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import random
import time

from bench.load import MIN_TIMEOUT_SECONDS, LoadResult, LoadSettings

MAX_REQUESTS = 2_000_000


def run_python_load(
    port: int, specs: list[tuple[str, dict[str, str]]], settings: LoadSettings
) -> LoadResult:
    """Run the load and merge the processes' latencies and counts."""
    raw = [_raw_request(path, headers, port) for path, headers in specs]
    threads = max(1, settings.threads)
    per_process = [
        settings.connections // threads + (index < settings.connections % threads)
        for index in range(threads)
    ]
    jobs = [(port, raw, count, settings.duration, i) for i, count in enumerate(per_process)]
    with multiprocessing.get_context("spawn").Pool(threads) as pool:
        outcomes = pool.starmap(_process_main, jobs)
    latencies = sorted(latency for outcome in outcomes for latency in outcome[0])
    return LoadResult(
        requests=len(latencies),
        seconds=max(outcome[3] for outcome in outcomes),
        p50_ms=_percentile(latencies, 50) * 1e3,
        p99_ms=_percentile(latencies, 99) * 1e3,
        errors=sum(outcome[1] for outcome in outcomes),
        status_errors=sum(outcome[2] for outcome in outcomes),
    )


def _raw_request(path: str, headers: dict[str, str], port: int) -> bytes:
    lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _percentile(values: list[float], percent: float) -> float:
    if not values:
        return 0.0
    return values[min(len(values) - 1, int(len(values) * percent / 100))]


def _process_main(
    port: int, raw: list[bytes], connections: int, duration: float, seed: int
) -> tuple[list[float], int, int, float]:
    return asyncio.run(_drive(port, raw, connections, duration, seed))


async def _drive(
    port: int, raw: list[bytes], connections: int, duration: float, seed: int
) -> tuple[list[float], int, int, float]:
    """(latencies in s, socket errors, non-2xx/3xx answers, elapsed s) of one process."""
    latencies: list[float] = []
    counts = [0, 0]  # errors, status errors
    rng = random.Random(seed)
    started = time.perf_counter()
    deadline = started + duration
    timeout = max(MIN_TIMEOUT_SECONDS, 2 * duration)

    async def connection() -> None:
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        while time.perf_counter() < deadline and len(latencies) < MAX_REQUESTS:
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                assert reader is not None
                sent = time.perf_counter()
                writer.write(raw[rng.randrange(len(raw))])
                status, keep_alive = await asyncio.wait_for(_read_response(reader), timeout)
                latencies.append(time.perf_counter() - sent)
                if not 200 <= status < 400:
                    counts[1] += 1
                if not keep_alive:
                    writer.close()
                    writer = None
            except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError):
                counts[0] += 1
                if writer is not None:
                    writer.close()
                writer = None
        if writer is not None:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(connections)))
    return latencies, counts[0], counts[1], time.perf_counter() - started


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one response (Content-Length, chunked or close-delimited); (status, keep-alive)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    version, status = lines[0].split(" ", 2)[:2]
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip().lower()
    keep_alive = headers.get("connection") != "close" and version == "HTTP/1.1"
    code = int(status)
    if code in (204, 304) or 100 <= code < 200:
        return code, keep_alive
    if "content-length" in headers:
        await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding") == "chunked":
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            await reader.readexactly(size + 2)
        await reader.readuntil(b"\r\n")
    else:
        await reader.read()
        keep_alive = False
    return code, keep_alive
