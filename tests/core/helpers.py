"""Helpers shared by the core tests: credentials, upload forms and per-worker request tracking."""

from __future__ import annotations

import base64
import collections
import hashlib
import json
import time
import tomllib
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import requests
from falcon.testing import Result, TestClient
from packaging.utils import parse_sdist_filename, parse_wheel_filename
from urllib3 import encode_multipart_formdata

from private_pypi_core.state import ServerSettings
from private_pypi_core.web.app import create_app
from tests.server import RunningServer, start_server

UPLOAD_DEFAULTS = {":action": "file_upload", "protocol_version": "1"}


def basic_auth(repository: str, secret: str) -> dict[str, str]:
    """The ``Authorization`` header pip and twine send for ``repository:secret``."""
    token = base64.b64encode(f"{repository}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def upload_fields(
    path: Path, *, requires_python: str | None = None, **overrides: str | None
) -> dict[str, str]:
    """The form fields twine sends with ``path``; an override of ``None`` drops a field."""
    if path.name.endswith(".whl"):
        name, version, _, _ = parse_wheel_filename(path.name)
        filetype = "bdist_wheel"
    else:
        name, version = parse_sdist_filename(path.name)
        filetype = "sdist"
    data = path.read_bytes()
    fields: dict[str, str | None] = {
        **UPLOAD_DEFAULTS,
        "name": str(name),
        "version": str(version),
        "filetype": filetype,
        "sha256_digest": hashlib.sha256(data).hexdigest(),
        "md5_digest": hashlib.md5(data, usedforsecurity=False).hexdigest(),
        "blake2_256_digest": hashlib.blake2b(data, digest_size=32).hexdigest(),
        "requires_python": requires_python,
        **overrides,
    }
    return {key: value for key, value in fields.items() if value is not None}


@dataclass
class Site:
    """The Falcon app in process, on the embedded default (repository ``local``), and that
    repository's secrets."""

    client: TestClient
    root: Path
    read_secret: str
    write_secret: str

    @property
    def read(self) -> dict[str, str]:
        return basic_auth("local", self.read_secret)

    @property
    def write(self) -> dict[str, str]:
        return basic_auth("local", self.write_secret)

    @property
    def storage(self) -> Path:
        return self.root / "cache" / "local" / "storage"

    def upload(
        self,
        dist: Path,
        *,
        path: str = "/simple/",
        filename: str | None = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        overrides: dict[str, str | None] | None = None,
        **fields: str | None,
    ) -> Result:
        """POST ``dist`` as twine would; ``fields``/``overrides`` change or drop form fields."""
        form = upload_fields(dist, **{**fields, **(overrides or {})})
        data = dist.read_bytes() if content is None else content
        body, content_type = encode_multipart_formdata(
            [
                *form.items(),
                (
                    "content",
                    (dist.name if filename is None else filename, data, "application/octet-stream"),
                ),
            ]
        )
        return self.client.simulate_post(
            path,
            body=body,
            headers={**(self.write if headers is None else headers), "Content-Type": content_type},
        )

    def stored_files(self) -> list[str]:
        """Every file in the repository's storage folder but the index, its parts and its
        lock."""
        return sorted(
            p.name
            for p in self.storage.rglob("*")
            if p.is_file()
            and p.name not in {"index.json", ".index.lock"}
            and p.parent.name != ".index-parts"
        )

    def upload_temp_files(self) -> list[Path]:
        return list((self.root / "tmp").iterdir())

    @classmethod
    def open(cls, root: Path, *, extra_index_url: str = "") -> Self:
        """The app on a fresh ROOT, with the secrets it generated for ``local``."""
        app = create_app(ServerSettings(root=root, extra_index_url=extra_index_url))
        secrets = tomllib.loads((root / "embedded" / "config.toml").read_text())["local"]
        return cls(
            client=TestClient(app),
            root=root,
            read_secret=secrets["read_secret"],
            write_secret=secrets["write_secret"],
        )


# --- A real server whose access log says which worker process answered each request. ---


def _log_config(access_log: Path) -> dict[str, object]:
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "root": {"level": "INFO", "handlers": ["console"]},
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": ["console"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": ["access"], "propagate": False},
        },
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "console",
                "stream": "ext://sys.stdout",
            },
            "access": {
                "class": "logging.FileHandler",
                "formatter": "access",
                "filename": str(access_log),
            },
        },
        "formatters": {
            "console": {"format": "[%(process)d] %(levelname)s %(name)s: %(message)s"},
            "access": {"format": "%(process)d %(message)s"},
        },
    }


@dataclass
class TrackedServer:
    """A running server with two workers whose access log names the worker of each request."""

    server: RunningServer
    access_log: Path

    @property
    def url(self) -> str:
        return self.server.url

    def stop(self) -> None:
        self.server.stop()

    def wait_for_workers(self, count: int = 2, timeout: float = 30) -> None:
        """Wait until ``count`` workers have started: the server answers after the first."""
        deadline = time.monotonic() + timeout
        while self.server.log().count("Application startup complete") < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{count} workers did not start:\n{self.server.log()}")
            time.sleep(0.05)

    def statuses_by_worker(
        self,
        path: str,
        headers: Mapping[str, str],
        *,
        method: str = "GET",
        data: Mapping[str, str] | None = None,
        requests_per_round: int = 20,
        max_rounds: int = 5,
    ) -> dict[int, collections.Counter[int]]:
        """Send ``method path`` concurrently until two workers answered; statuses by worker pid.

        Requests are sent in parallel because one idle worker tends to accept every connection
        of a sequential client.
        """
        by_worker: dict[int, collections.Counter[int]] = collections.defaultdict(
            collections.Counter
        )

        def send(_: int) -> None:
            requests.request(method, self.url + path, headers=headers, data=data, timeout=10)

        for _ in range(max_rounds):
            offset = self.access_log.stat().st_size if self.access_log.exists() else 0
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(send, range(requests_per_round)))
            for pid, status in self._logged(f"{method} {path}", offset, requests_per_round):
                by_worker[pid][status] += 1
            if len(by_worker) >= 2:
                break
        return dict(by_worker)

    def statuses_everywhere(self, path: str, headers: Mapping[str, str]) -> set[int]:
        """The statuses ``GET path`` gets from the workers; asserts that both workers answered."""
        by_worker = self.statuses_by_worker(path, headers)
        assert len(by_worker) == 2, f"only one worker answered: {by_worker}"
        return {status for statuses in by_worker.values() for status in statuses}

    def _logged(self, request: str, offset: int, count: int) -> list[tuple[int, int]]:
        deadline = time.monotonic() + 10
        while True:
            with open(self.access_log, "rb") as log:
                log.seek(offset)
                lines = [
                    line for line in log.read().decode().splitlines() if f'"{request} ' in line
                ]
            if len(lines) >= count or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert len(lines) == count, f"expected {count} access log lines, got {lines}"
        # "<pid> <client> - <user> [<time>] "<request line>" <status> ...": see web.access_log
        return [(int(line.split()[0]), int(line.split('"')[2].split()[0])) for line in lines]


def start_tracked_server(root: Path, *args: str) -> TrackedServer:
    """``tests.server.start_server`` with an access log naming each request's worker."""
    root.mkdir(parents=True, exist_ok=True)
    access_log = root.parent / f"{root.name}-access.log"
    log_config = root.parent / f"{root.name}-logging.json"
    log_config.write_text(json.dumps(_log_config(access_log)))
    server = start_server(root, f"--logconfig_json={log_config}", *args)
    tracked = TrackedServer(server=server, access_log=access_log)
    try:
        tracked.wait_for_workers()
    except BaseException:
        server.stop()
        raise
    return tracked
