"""Index changes reach a plugin's ``private_pypi_index_changed`` hook
(``tests/plugins/private_pypi_webhook`` posts them to a URL): publishing, yanking, unyanking,
and a sync that learns of another server's upload. A hook that fails or hangs never fails or
delays the upload that triggered it."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.hardening.support import (
    HTTP_TIMEOUT,
    ServerSpec,
    fs_table,
    upload,
    wait_until,
    wheel_bytes,
    wheel_name,
    write_auth,
)
from tests.server import RunningServer

WEBHOOK_VARIABLE = "PRIVATE_PYPI_WEBHOOK_URL"


@dataclass
class Receiver:
    """A webhook endpoint on loopback that records what it is sent, and answers ``status``
    after ``delay`` seconds."""

    status: int = 200
    delay: float = 0.0
    received: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append(json.loads(body))
                time.sleep(receiver.delay)
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.http.daemon_threads = True
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http.server_address[1]}/hook"

    def stop(self) -> None:
        self.http.shutdown()

    def reasons(self) -> list[tuple[str, list[str], list[str]]]:
        return [(c["reason"], c["added"], c["changed"]) for c in self.received]


def start(spec: ServerSpec, receiver: Receiver) -> RunningServer:
    with pytest.MonkeyPatch.context() as environment:
        environment.setenv(WEBHOOK_VARIABLE, receiver.url)
        return spec.start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    yield running
    running.stop()


def publish(server: RunningServer, name: str, version: str = "1.0") -> requests.Response:
    data = wheel_bytes(name, version)
    return upload(server, wheel_name(name, version), data, name=name, version=version)


def post(server: RunningServer, action: str, project: str, target: str) -> requests.Response:
    return requests.post(
        f"{server.url}/{action}/",
        data={"project": project, "target": target, "reason": "broken"},
        headers=write_auth(server),
        timeout=HTTP_TIMEOUT,
    )


def test_publish_yank_and_unyank_are_told_in_order(tmp_path: Path, receiver: Receiver) -> None:
    # One worker: each process tells its changes in order (``events``); another's change could
    # overtake one whose hook is still starting (the webhook imports requests at its first).
    spec = ServerSpec(tmp_path / "root", {"local": fs_table("local")}, flags=("--workers=1",))
    server = start(spec, receiver)
    try:
        filename = wheel_name("demo-pkg", "1.0")
        assert publish(server, "demo-pkg").status_code == 200
        assert post(server, "yank", "demo-pkg", "1.0").status_code == 200
        assert post(server, "unyank", "demo-pkg", "1.0").status_code == 200
        assert publish(server, "demo-pkg").status_code == 200  # the same file: nothing new
        expected = [
            ("published", [filename], []),
            ("yanked", [], [filename]),
            ("unyanked", [], [filename]),
        ]
        assert wait_until(lambda: len(receiver.received) >= 3), receiver.received
        time.sleep(0.5)
        assert receiver.reasons() == expected
        assert all(change["repository"] == "local" for change in receiver.received)
    finally:
        server.stop()


def test_a_sync_tells_what_another_server_published(tmp_path: Path, receiver: Receiver) -> None:
    """Two servers on one storage folder: the second learns of the first's upload by syncing."""
    shared = str(tmp_path / "shared-storage")
    table = fs_table("local", storage_path=shared, sync_index_interval=1)
    first = ServerSpec(tmp_path / "first", {"local": table}).start()
    second = start(ServerSpec(tmp_path / "second", {"local": table}), receiver)
    try:
        assert publish(first, "elsewhere-pkg").status_code == 200
        assert wait_until(lambda: bool(receiver.received), timeout=15), "no sync was told"
        assert receiver.reasons()[0] == ("synced", [wheel_name("elsewhere-pkg", "1.0")], [])
    finally:
        first.stop()
        second.stop()


def test_a_failing_hook_fails_no_upload_and_later_changes_are_still_told(
    tmp_path: Path,
) -> None:
    failing = Receiver(status=500)
    server = start(ServerSpec(tmp_path / "root", {"local": fs_table("local")}), failing)
    try:
        for name in ("one-pkg", "two-pkg"):
            assert publish(server, name).status_code == 200
        assert wait_until(lambda: len(failing.received) == 2), failing.received
        assert wait_until(lambda: server.log().count("private_pypi_index_changed failed") == 2)
    finally:
        server.stop()
        failing.stop()


def test_a_hanging_hook_delays_no_upload(tmp_path: Path) -> None:
    hanging = Receiver(delay=20)
    server = start(ServerSpec(tmp_path / "root", {"local": fs_table("local")}), hanging)
    try:
        for i in range(3):
            started = time.monotonic()
            assert publish(server, f"quick-{i}-pkg").status_code == 200
            assert time.monotonic() - started < 2, "the upload waited for the hook"
    finally:
        server.stop()
        hanging.stop()
