"""A real ``private_pypi server`` (gunicorn, uvicorn workers) on 127.0.0.1, for end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import requests

STARTUP_SECONDS = 30


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def private_pypi_command() -> list[str]:
    """The installed ``private_pypi`` entry point of the running interpreter's environment."""
    script = Path(sys.executable).parent / "private_pypi"
    return [str(script)] if script.exists() else [sys.executable, "-m", "private_pypi_core"]


@dataclass
class RunningServer:
    root: Path
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    repositories: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def simple_url(self) -> str:
        return f"{self.url}/simple/"

    def secret(self, repository: str = "local", kind: str = "read") -> str:
        return self.repositories[repository][f"{kind}_secret"]

    def credentials_url(self, repository: str = "local", kind: str = "read") -> str:
        """The simple index URL with ``repository:secret@`` in it, as pip takes it."""
        return f"http://{repository}:{self.secret(repository, kind)}@127.0.0.1:{self.port}/simple/"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _wait_until_serving(server: RunningServer) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited with {server.process.returncode}:\n{server.log()}")
        try:
            requests.get(f"{server.url}/login/", timeout=2)
            return
        except (requests.ConnectionError, requests.Timeout):
            time.sleep(0.1)
    raise RuntimeError(f"server did not start in {STARTUP_SECONDS}s:\n{server.log()}")


def start_server(
    root: Path,
    *args: str,
    env: dict[str, str] | None = None,
    command: list[str] | None = None,
    public_url: bool = False,
) -> RunningServer:
    """Start ``private_pypi server ROOT`` and wait until it answers; ``args`` are extra flags.

    With ``command`` given (e.g. ``[]`` for environment mode), it replaces the default arguments.
    With ``public_url``, the server is told its own URL (``--url``), as an operator would.
    """
    port = free_port()
    if public_url:
        args = (*args, f"--url=http://127.0.0.1:{port}")
    root.mkdir(parents=True, exist_ok=True)
    log_path = root.parent / f"{root.name}-server-{port}.log"
    argv = private_pypi_command() + (
        command
        if command is not None
        else ["server", str(root), "--host", "127.0.0.1", f"--port={port}", *args]
    )
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {}), "PRIVATE_PYPI_TEST_PORT": str(port)},
            start_new_session=True,
        )
    server = RunningServer(root=root, port=port, process=process, log_path=log_path)
    try:
        _wait_until_serving(server)
    except BaseException:
        server.stop()
        raise
    embedded = root / "embedded" / "config.toml"
    if embedded.exists():
        server.repositories = tomllib.loads(embedded.read_text())
    return server
