"""A real server whose repositories include proxies of a loopback upstream (``upstream``)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests
import tomli_w

from tests.server import RunningServer, start_server

JSON = "application/vnd.pypi.simple.v1+json"
SECRETS = {
    "team": ("team-read", "team-write"),
    "pypi": ("pypi-read", ""),
    "all": ("all-read", "all-write"),
}


def proxy_table(upstream: str, **settings: Any) -> dict[str, Any]:
    """The ``[pypi]`` table of a proxy of ``upstream`` stored on the file system."""
    return {
        "type": "file_system",
        "read_secret": SECRETS["pypi"][0],
        "proxy": {"upstream": upstream, "timeout": 2, **settings},
    }


def team_table() -> dict[str, Any]:
    read, write = SECRETS["team"]
    return {"type": "file_system", "read_secret": read, "write_secret": write}


def virtual_table(**settings: Any) -> dict[str, Any]:
    read, write = SECRETS["all"]
    return {
        "type": "virtual",
        "members": ["team", "pypi"],
        "upload_to": "team",
        "read_secret": read,
        "write_secret": write,
        **settings,
    }


@contextmanager
def serving(
    root: Path, repositories: Mapping[str, dict[str, Any]], *flags: str
) -> Iterator[RunningServer]:
    """A server of ``repositories`` (tables by name) under ``root`` (and ``flags``), stopped
    at the end."""
    root.mkdir(parents=True, exist_ok=True)
    config = root.parent / f"{root.name}-config.toml"
    config.write_text(tomli_w.dumps(dict(repositories)))
    admin = root.parent / f"{root.name}-admin.toml"
    admin.write_text(
        tomli_w.dumps(
            {
                name: {"type": t["type"], "raw": SECRETS[name][1] or "unused"}
                for name, t in repositories.items()
            }
        )
    )
    server = start_server(
        root, "--config", str(config), "--admin_secret", str(admin), "--extra_index_url=", *flags
    )
    try:
        yield server
    finally:
        server.stop()


def auth(name: str, kind: int = 0) -> tuple[str, str]:
    return name, SECRETS[name][kind]


def page(server: RunningServer, repository: str, project: str, **headers: str) -> requests.Response:
    return requests.get(
        f"{server.url}/simple/{project}/",
        auth=auth(repository),
        headers={"Accept": JSON, **headers},
        timeout=30,
    )


def download(server: RunningServer, repository: str, project: str, url: str) -> requests.Response:
    return requests.get(f"{server.url}/simple/{project}/{url}", auth=auth(repository), timeout=30)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def upload(server: RunningServer, repository: str, path: Path) -> requests.Response:
    """A legacy API upload, as twine sends it."""
    name, version = path.name.split("-")[:2]
    return requests.post(
        f"{server.url}/simple/",
        auth=auth(repository, 1),
        data={
            ":action": "file_upload",
            "protocol_version": "1",
            "name": name,
            "version": version,
            "filetype": "bdist_wheel",
            "pyversion": "py3",
            "metadata_version": "2.1",
            "sha256_digest": sha256(path.read_bytes()),
        },
        files={"content": (path.name, path.read_bytes())},
        timeout=30,
    )
