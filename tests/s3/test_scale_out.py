"""Three real private-pypi servers on one bucket behave as one index."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import tomli_w

from tests.dists import make_wheel
from tests.e2e.clients import (
    client_env,
    legacy_upload,
    pip_command,
    project_links,
    report,
    run,
    sha256_of,
)
from tests.s3.conftest import READ_SECRET, WRITE_SECRET, fresh_prefix
from tests.s3.seaweed import Seaweed
from tests.server import RunningServer, start_server

pytestmark = pytest.mark.e2e

SERVERS = 3
UPLOADS = 30
PROJECTS = 10
SYNC_INDEX_INTERVAL = 2
# The servers' sync loop looks every second, and the last sync time is kept in whole seconds.
CONVERGENCE_MARGIN = 3
REPOSITORY = "local"  # the name tests.e2e.clients authenticates as


@dataclass
class Cluster:
    servers: list[RunningServer]
    seaweed: Seaweed
    prefix: str


@pytest.fixture(scope="module")
def cluster(seaweed: Seaweed, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    directory = tmp_path_factory.mktemp("scale-out")
    prefix = fresh_prefix()
    table = {
        "type": "s3",
        **seaweed.settings(prefix),
        "read_secret": READ_SECRET,
        "write_secret": WRITE_SECRET,
        "sync_index_interval": SYNC_INDEX_INTERVAL,
    }
    config = directory / "config.toml"
    config.write_text(tomli_w.dumps({REPOSITORY: table}))
    admin_secret = directory / "admin_secret.toml"
    admin_secret.write_text(tomli_w.dumps({REPOSITORY: {"type": "s3", "raw": WRITE_SECRET}}))

    def start(i: int) -> RunningServer:
        server = start_server(
            directory / f"root{i}",
            f"--config={config}",
            f"--admin_secret={admin_secret}",
            "--extra_index_url=",
        )
        server.repositories = {
            REPOSITORY: {"read_secret": READ_SECRET, "write_secret": WRITE_SECRET}
        }
        return server

    servers: list[RunningServer] = []
    try:
        for i in range(SERVERS):
            servers.append(start(i))
        yield Cluster(servers, seaweed, prefix)
    finally:
        with ThreadPoolExecutor(SERVERS) as pool:
            list(pool.map(RunningServer.stop, servers))


def _upload(server: RunningServer, path: Path, name: str, version: str) -> requests.Response:
    return legacy_upload(server, path, name=name, version=version, auth=(REPOSITORY, WRITE_SECRET))


def _listed(server: RunningServer, projects: set[str]) -> dict[str, str | None]:
    """filename -> sha256 of every file the server lists for ``projects``."""
    return {
        filename: link.sha256
        for project in projects
        for filename, link in project_links(server, project).items()
    }


def _wait_until_all_list(cluster: Cluster, expected: dict[str, str], projects: set[str]) -> float:
    """Seconds until every server lists exactly ``expected``; fails past one sync interval."""
    start = time.monotonic()
    deadline = start + SYNC_INDEX_INTERVAL + CONVERGENCE_MARGIN
    while True:
        listings = [_listed(server, projects) for server in cluster.servers]
        if all(listing == expected for listing in listings):
            return time.monotonic() - start
        if time.monotonic() > deadline:
            missing = [sorted(set(expected) - set(listing)) for listing in listings]
            pytest.fail(f"servers still miss files after {deadline - start:.0f}s: {missing}")
        time.sleep(0.1)


def test_uploads_to_three_servers_at_once_converge_within_one_sync_interval(
    cluster: Cluster, tmp_path: Path
) -> None:
    uploads = [
        (f"scale-{i % PROJECTS}", f"1.0.{i // PROJECTS}", cluster.servers[i % SERVERS])
        for i in range(UPLOADS)
    ]
    wheels = [make_wheel(tmp_path, name, version) for name, version, _ in uploads]

    def publish(i: int) -> None:
        name, version, server = uploads[i]
        response = _upload(server, wheels[i], name, version)
        assert response.status_code == 200, f"{response.status_code}: {response.text}"
        own = project_links(server, name)
        assert wheels[i].name in own, "a server lists its own upload at once"

    started = time.monotonic()
    with ThreadPoolExecutor(UPLOADS) as pool:
        list(pool.map(publish, range(UPLOADS)))
    uploaded = time.monotonic() - started

    expected = {wheel.name: sha256_of(wheel) for wheel in wheels}
    converged = _wait_until_all_list(cluster, expected, {name for name, _, _ in uploads})
    print(f"\n{UPLOADS} uploads in {uploaded:.2f}s; all servers listed them {converged:.2f}s later")

    stored = cluster.seaweed.client().list_objects_v2(
        Bucket=cluster.seaweed.bucket, Prefix=f"{cluster.prefix}/"
    )
    keys = {item["Key"].rsplit("/", 1)[-1] for item in stored["Contents"]}
    assert set(expected) <= keys, "every upload is stored in the bucket"


def test_changed_bytes_are_refused_by_every_server_and_the_same_bytes_accepted(
    cluster: Cluster, tmp_path: Path
) -> None:
    original = make_wheel(tmp_path / "original", "dupe-check", "1.0", payload="original")
    changed = make_wheel(tmp_path / "changed", "dupe-check", "1.0", payload="changed")
    first = _upload(cluster.servers[0], original, "dupe-check", "1.0")
    assert first.status_code == 200, first.text
    for server in cluster.servers:
        refused = _upload(server, changed, "dupe-check", "1.0")
        assert refused.status_code == 409, f"{server.url}: {refused.status_code} {refused.text}"
        again = _upload(server, original, "dupe-check", "1.0")
        assert again.status_code == 200, f"{server.url}: {again.status_code} {again.text}"
    _wait_until_all_list(cluster, {original.name: sha256_of(original)}, {"dupe-check"})


def test_pip_installs_through_every_server_from_presigned_urls(
    cluster: Cluster, tmp_path: Path
) -> None:
    wheel = make_wheel(tmp_path / "dist", "via-pip", "2.0", payload="installed")
    response = _upload(cluster.servers[1], wheel, "via-pip", "2.0")
    assert response.status_code == 200, response.text
    _wait_until_all_list(cluster, {wheel.name: sha256_of(wheel)}, {"via-pip"})
    env = client_env(tmp_path)

    def install(i: int) -> Path:
        server = cluster.servers[i]
        file_url = f"{server.simple_url}via-pip/{wheel.name}"
        redirect = requests.get(
            file_url, auth=(REPOSITORY, READ_SECRET), allow_redirects=False, timeout=10
        )
        assert redirect.status_code == 302
        assert redirect.headers["Location"].startswith(cluster.seaweed.endpoint_url)
        target = tmp_path / f"target{i}"
        index_url = f"http://{REPOSITORY}:{READ_SECRET}@127.0.0.1:{server.port}/simple/"
        result = run(
            pip_command(
                "install",
                "--no-input",
                "--no-cache-dir",
                "--retries=0",
                f"--target={target}",
                f"--index-url={index_url}",
                "via-pip==2.0",
            ),
            env,
        )
        assert result.returncode == 0, report(result)
        return target

    with ThreadPoolExecutor(SERVERS) as pool:
        targets = list(pool.map(install, range(SERVERS)))
    for target in targets:
        assert "PAYLOAD = 'installed'" in (target / "via_pip" / "__init__.py").read_text()
