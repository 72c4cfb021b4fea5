"""A server tree's memory at rest: RSS and PSS summed over its master and workers.

RSS counts a page shared by the master and its forked workers once in each process; PSS
splits it between them, so the PSS sum is what the tree really holds.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bench.client import Http
from bench.servers import Server

MB = 10**6
# A few requests, on fresh connections and two at a time so both workers are likely to
# serve some; few, because one page of pypiserver's takes seconds at 20,000 files.
WARM_CLIENTS = 2
WARM_REQUESTS = 2  # per client
SETTLE_SECONDS = 1.0


@dataclass(frozen=True)
class Memory:
    rss_mb: float
    pss_mb: float
    processes: int


def idle_memory(server: Server, paths: list[str]) -> Memory:
    """The tree's memory after a few requests (``paths`` in turn) and a moment's rest."""
    headers = {"Authorization": server.authorization}

    def client(offset: int) -> None:
        for number in range(WARM_REQUESTS):
            path = paths[(offset + number) % len(paths)]
            with Http(server.port) as http:
                status = http.get(path, headers).status
            if status != 200:
                raise RuntimeError(f"{server.name}: GET {path} answered {status}")

    with ThreadPoolExecutor(WARM_CLIENTS) as pool:
        for future in [pool.submit(client, offset) for offset in range(WARM_CLIENTS)]:
            future.result()
    time.sleep(SETTLE_SECONDS)
    pids = server.pids()
    rss_kb = pss_kb = 0
    for pid in pids:
        rollup = _smaps_rollup(pid)
        rss_kb += rollup.get("Rss", 0)
        pss_kb += rollup.get("Pss", 0)
    return Memory(rss_mb=rss_kb * 1024 / MB, pss_mb=pss_kb * 1024 / MB, processes=len(pids))


def _smaps_rollup(pid: int) -> dict[str, int]:
    """The kB fields of ``/proc/<pid>/smaps_rollup`` ({} when the process is gone)."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return {}
    fields = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if len(parts) == 2 and parts[1] == "kB":
            fields[name] = int(parts[0])
    return fields
