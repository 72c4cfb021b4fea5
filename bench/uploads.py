"""Many small uploads at once: threads, each on its own keep-alive connection, posting the
twine-shaped form; uploads/s, each upload's time and every answer that was not a 2xx.

A run stops starting uploads when its window closes, so a server that slows down with
the files it holds (pypiserver lists its folder on every upload) bounds the benchmark's
time rather than the count of files.
"""

from __future__ import annotations

import http.client
import statistics
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

from bench.form import multipart, upload_fields
from bench.servers import Server, basic_auth
from bench.wheelsets import SmallWheel

TIMEOUT_SECONDS = 120.0


@dataclass(frozen=True)
class Prepared:
    """One upload, its body built before the clock starts so the client stays cheap."""

    content_type: str
    body: bytes


@dataclass
class UploadsResult:
    """Uploads that got a 2xx, the wall time of the whole run, each upload's seconds, the
    failures by cause (``"503"``, ``"ConnectionResetError"``...) and the uploads not sent
    when the window closed."""

    ok: int
    seconds: float
    latencies: list[float]
    failures: Counter[str] = field(default_factory=Counter)
    unsent: int = 0

    @property
    def per_second(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    @property
    def failed(self) -> int:
        return sum(self.failures.values())

    @property
    def median_ms(self) -> float:
        return statistics.median(self.latencies) * 1e3

    def problems(self) -> str:
        """'' or how many failed, by cause."""
        return ", ".join(f"{count} x {cause}" for cause, count in self.failures.most_common())


def prepare(wheels: list[SmallWheel]) -> list[Prepared]:
    prepared = []
    for wheel in wheels:
        boundary = uuid.uuid4().hex
        fields = upload_fields(wheel.project, wheel.version, wheel.sha256())
        head, tail = multipart(boundary, fields, wheel.path.name)
        prepared.append(
            Prepared(
                content_type=f"multipart/form-data; boundary={boundary}",
                body=head + wheel.path.read_bytes() + tail,
            )
        )
    return prepared


def upload_all(
    server: Server, password: str, uploads: list[Prepared], threads: int, window: float
) -> UploadsResult:
    """``threads`` uploaders, each taking every ``threads``-th upload in turn, none starting
    one after ``window`` seconds."""
    assert server.upload_path is not None
    authorization = basic_auth(server.user, password)
    shares = [uploads[start::threads] for start in range(threads)]
    results = [UploadsResult(ok=0, seconds=0.0, latencies=[]) for _ in shares]
    started = time.perf_counter()
    deadline = started + window
    workers = [
        threading.Thread(
            target=_uploader, args=(server, authorization, share, deadline, result), daemon=True
        )
        for share, result in zip(shares, results, strict=True)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    seconds = time.perf_counter() - started
    merged = UploadsResult(ok=0, seconds=seconds, latencies=[])
    for result in results:
        merged.ok += result.ok
        merged.latencies += result.latencies
        merged.failures += result.failures
        merged.unsent += result.unsent
    return merged


def _uploader(
    server: Server,
    authorization: str,
    uploads: list[Prepared],
    deadline: float,
    result: UploadsResult,
) -> None:
    assert server.upload_path is not None
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=TIMEOUT_SECONDS)
    try:
        for sent, upload in enumerate(uploads):
            started = time.perf_counter()
            if started > deadline:
                result.unsent = len(uploads) - sent
                return
            try:
                status = _post(connection, server.upload_path, authorization, upload)
            except (OSError, http.client.HTTPException) as error:
                # a broken connection fails this upload only: the next one reconnects
                connection.close()
                result.failures[type(error).__name__] += 1
                continue
            finally:
                result.latencies.append(time.perf_counter() - started)
            if 200 <= status < 300:
                result.ok += 1
            else:
                result.failures[str(status)] += 1
    finally:
        connection.close()


def _post(
    connection: http.client.HTTPConnection, path: str, authorization: str, upload: Prepared
) -> int:
    """POST one upload on ``connection`` (reopened when closed); the answer's status."""
    headers = {
        "Content-Type": upload.content_type,
        "Content-Length": str(len(upload.body)),
        "Authorization": authorization,
    }
    connection.putrequest("POST", path, skip_accept_encoding=True)
    for name, value in headers.items():
        connection.putheader(name, value)
    connection.endheaders(upload.body)
    response = connection.getresponse()
    response.read()
    if response.will_close:
        connection.close()
    return response.status
