"""Large transfers: downloads (curl when installed), sequential or from parallel clients,
and one streamed upload, sampling the server's memory meanwhile."""

from __future__ import annotations

import http.client
import shutil
import subprocess
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bench.corpus import BigFile
from bench.form import multipart, upload_fields
from bench.servers import Server, basic_auth

CHUNK = 1 << 20
MB = 10**6
RSS_INTERVAL_SECONDS = 0.05
UPLOAD_TIMEOUT_SECONDS = 600.0


@dataclass(frozen=True)
class Download:
    count: int
    seconds: float
    mb_per_s: float
    client: str


@dataclass(frozen=True)
class UploadResult:
    seconds: float
    status: int
    rss_before_mb: float
    rss_peak_mb: float
    processes: int


def download(server: Server, size: int, count: int, clients: int = 1) -> Download:
    """``clients`` at once, each making ``count`` sequential GETs of the server's download
    file; MB/s over the wall time of them all."""
    client = download_client()
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for future in [
            pool.submit(_downloads, server, size, count, client) for _ in range(clients)
        ]:
            future.result()
    seconds = time.perf_counter() - started
    total = count * clients
    rate = size * total / MB / seconds
    return Download(count=total, seconds=seconds, mb_per_s=rate, client=client)


def _downloads(server: Server, size: int, count: int, client: str) -> None:
    for _ in range(count):
        got = fetch_file(server.port, server.download_path, server.authorization, client)
        if got != size:
            raise RuntimeError(f"{server.name}: downloaded {got} bytes, expected {size}")


def download_client() -> str:
    """``curl`` when installed, else ``http.client``."""
    return "curl" if shutil.which("curl") else "http.client"


def fetch_file(port: int, path: str, authorization: str, client: str) -> int:
    """GET ``path`` on 127.0.0.1:``port`` with ``client`` (``download_client()``), the body
    thrown away; its size in bytes. Any answer but a 200 is an error."""
    if client == "curl":
        return _curl(port, path, authorization)
    return _stream(port, path, authorization)


def _curl(port: int, path: str, authorization: str) -> int:
    url = f"http://127.0.0.1:{port}{path}"
    argv = ["curl", "-sS", "--fail", "-o", "/dev/null", "-w", "%{size_download}"]
    argv += ["-H", f"Authorization: {authorization}", url]
    done = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout)


def _stream(port: int, path: str, authorization: str) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request("GET", path, headers={"Authorization": authorization})
        response = connection.getresponse()
        if response.status != 200:
            raise RuntimeError(f"GET {path} on port {port} answered {response.status}")
        buffer = bytearray(CHUNK)
        total = 0
        while read := response.readinto(buffer):
            total += read
        return total
    finally:
        connection.close()


def rss_mb(pids: list[int]) -> float:
    """Summed VmRSS of ``pids`` in MB (shared pages count once per process)."""
    total_kb = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
        except OSError:
            continue
    return total_kb * 1024 / MB


class RssSampler:
    """Samples a server's summed RSS every 50 ms in a thread and keeps the peak."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.peak = 0.0
        self.processes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            pids = self.server.pids()
            self.processes = max(self.processes, len(pids))
            self.peak = max(self.peak, rss_mb(pids))
            self._stop.wait(RSS_INTERVAL_SECONDS)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def upload(server: Server, password: str, big: BigFile) -> UploadResult:
    """POST ``big`` as twine does (multipart, sha256_digest), streamed with a Content-Length."""
    assert server.upload_path is not None
    boundary = uuid.uuid4().hex
    fields = upload_fields(big.project, big.version, big.sha256)
    head, tail = multipart(boundary, fields, big.path.name)
    size = big.path.stat().st_size
    headers = {
        "Content-Type": f"multipart/form-data; boundary={boundary}",
        "Content-Length": str(len(head) + size + len(tail)),
        "Authorization": basic_auth(server.user, password),
    }
    rss_before = rss_mb(server.pids())
    connection = http.client.HTTPConnection(
        "127.0.0.1", server.port, timeout=UPLOAD_TIMEOUT_SECONDS
    )
    with RssSampler(server) as sampler:
        started = time.perf_counter()
        try:
            connection.putrequest("POST", server.upload_path, skip_accept_encoding=True)
            for name, value in headers.items():
                connection.putheader(name, value)
            connection.endheaders()
            try:
                connection.send(head)
                with open(big.path, "rb") as file:
                    while chunk := file.read(CHUNK):
                        connection.send(chunk)
                connection.send(tail)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server answered early (e.g. 413): read that answer
            response = connection.getresponse()
            body = response.read()
        finally:
            connection.close()
        seconds = time.perf_counter() - started
    if not 200 <= response.status < 300:
        raise RuntimeError(f"{server.name}: upload answered {response.status}: {body[:500]!r}")
    return UploadResult(
        seconds=seconds,
        status=response.status,
        rss_before_mb=rss_before,
        rss_peak_mb=sampler.peak,
        processes=sampler.processes,
    )
