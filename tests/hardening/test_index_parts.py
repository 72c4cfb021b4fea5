"""The index in parts on a real store: an upload rewrites one part of the index however large
it is, several servers on one store agree on every file, no part is left that no index names,
and an index written in one file by an earlier version is taken over without losing a file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urljoin

import pytest
import requests

from private_pypi_core.index import IndexEntry, PackageIndex, shard_key
from tests.hardening.support import (
    ServerSpec,
    assert_index_matches_storage,
    fs_table,
    listing,
    local_index_path,
    parsed_index,
    read_auth,
    sha256_hex,
    storage_dir,
    upload,
    wait_until,
    wheel_bytes,
    wheel_name,
)
from tests.hardening.test_concurrency import all_at_once
from tests.server import RunningServer

PARTS = ".index-parts"


def part_files(storage: Path) -> dict[str, int]:
    """The store's index parts: inode by name."""
    return {path.name: path.stat().st_ino for path in (storage / PARTS).iterdir()}


def named_parts(storage: Path) -> set[str]:
    return set(json.loads((storage / "index.json").read_bytes())["parts"].values())


def publish(server: RunningServer, project: str, version: str) -> None:
    filename = wheel_name(project, version)
    response = upload(
        server, filename, wheel_bytes(project, version), name=project, version=version
    )
    assert response.status_code == 200, (filename, response.status_code, response.text)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    running = ServerSpec(tmp_path / "root", {"local": fs_table("local")}).start()
    try:
        yield running
    finally:
        running.stop()


def test_an_upload_replaces_only_the_part_of_its_project(server: RunningServer) -> None:
    projects = [f"spread-{n}" for n in range(40)]
    for project in projects:
        publish(server, project, "1.0")
    storage = storage_dir(server.root)
    before = part_files(storage)
    assert set(before) == named_parts(storage), "parts that the index does not name"
    assert len(before) == len({shard_key(p) for p in projects}) > 20

    publish(server, "spread-7", "2.0")
    after = part_files(storage)
    assert set(after) == named_parts(storage)
    replaced, added = set(before) - set(after), set(after) - set(before)
    assert len(replaced) == len(added) == 1, (replaced, added)
    assert next(iter(added)).startswith(shard_key("spread-7") + "-")
    kept = set(before) & set(after)
    assert all(before[name] == after[name] for name in kept), "an untouched part was rewritten"
    local = parsed_index(local_index_path(server.root))
    assert {e.filename for e in local.files_of("spread-7") or []} == {
        wheel_name("spread-7", "1.0"),
        wheel_name("spread-7", "2.0"),
    }
    assert_index_matches_storage(server.root, local)


def test_several_servers_on_one_store_list_every_file_and_leave_no_stray_part(
    tmp_path: Path,
) -> None:
    store = tmp_path / "store"
    table = fs_table("local", storage_path=str(store), sync_index_interval=1)
    specs = [ServerSpec(tmp_path / f"root-{n}", {"local": table}, ("--workers=2",)) for n in (1, 2)]
    servers = [spec.start() for spec in specs]
    try:
        jobs = []
        for n in range(24):
            server, project = servers[n % 2], f"shared-{n % 6}"
            jobs.append(
                lambda s=server, p=project, v=f"1.{n}": upload(
                    s, wheel_name(p, v), wheel_bytes(p, v), name=p, version=v
                )
            )
        responses = all_at_once(jobs)
        assert [r.status_code for r in responses] == [200] * 24, [r.text for r in responses]
        assert part_files(store).keys() == named_parts(store), "a part no index names was left"
        remote = parsed_index(store / "index.json")
        assert len(remote.entries) == 24
        expected = {
            project: sorted((e.filename, e.sha256) for e in entries)
            for project, entries in remote.projects.items()
        }
        for server in servers:  # each sees the other's uploads once it has synced
            assert wait_until(
                lambda s=server: {p: sorted(f) for p, f in listing(s).items()} == expected,
                timeout=15,
            ), listing(server)
    finally:
        for server in servers:
            server.stop()


def test_an_index_in_one_file_is_taken_over_with_every_file(tmp_path: Path) -> None:
    """A store (and local copy) written by an earlier version, whose index is one file."""
    spec = ServerSpec(tmp_path / "root", {"local": fs_table("local")})
    storage = storage_dir(spec.root)
    entries = []
    for n in range(30):
        project, version = f"legacy-{n}", "1.0"
        data = wheel_bytes(project, version)
        path = storage / project / wheel_name(project, version)
        path.parent.mkdir(parents=True)
        path.write_bytes(data)
        uploaded = datetime(2026, 1, 1, tzinfo=UTC)
        entries.append(
            IndexEntry(path.name, project, version, sha256_hex(data), len(data), uploaded)
        )
    in_one_file = PackageIndex.of(entries).to_bytes()
    (storage / "index.json").write_bytes(in_one_file)
    local_index_path(spec.root).write_bytes(in_one_file)

    server = spec.start()
    try:
        served = listing(server)
        assert sorted(served) == sorted(f"legacy-{n}" for n in range(30))
        publish(server, "legacy-3", "2.0")
        assert named_parts(storage) == set(part_files(storage)), "not in parts after a change"
        remote = parsed_index(storage / "index.json")
        assert len(remote.entries) == 31
        assert_index_matches_storage(spec.root, remote)
        assert len(listing(server)["legacy-3"]) == 2
        page_url = f"{server.simple_url}legacy-0/"
        headers = {**read_auth(server), "Accept": "application/vnd.pypi.simple.v1+json"}
        [file] = requests.get(page_url, headers=headers, timeout=10).json()["files"]
        download = requests.get(urljoin(page_url, file["url"]), headers=headers, timeout=10)
        assert download.status_code == 200 and download.content == wheel_bytes("legacy-0", "1.0")
    finally:
        server.stop()
