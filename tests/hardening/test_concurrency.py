"""Parallel uploads through a real server with 3 workers: every distinct file listed once,
one stored copy of a contested filename, hashes that match, and an index that agrees with
storage (the remote index in the store and each server's local copy)."""

from __future__ import annotations

import random
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.core.helpers import TrackedServer
from tests.hardening.support import (
    ServerSpec,
    assert_index_matches_storage,
    fs_table,
    index_texts,
    listing,
    local_index_path,
    parsed_index,
    sha256_hex,
    storage_dir,
    stored_distributions,
    temp_files,
    upload,
    wheel_bytes,
    wheel_name,
)

PARALLEL = 16


@pytest.fixture(scope="module")
def tracked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrackedServer]:
    spec = ServerSpec(
        tmp_path_factory.mktemp("concurrency") / "root",
        {"local": fs_table("local")},
        ("--workers=3",),
    )
    server = spec.start_tracked()
    try:
        server.wait_for_workers(3)
        yield server
    finally:
        server.stop()


def all_at_once(jobs: list[Callable[[], requests.Response]]) -> list[requests.Response]:
    """Run ``jobs`` in parallel threads released together, each on its own connection."""
    barrier = threading.Barrier(len(jobs))

    def run(job: Callable[[], requests.Response]) -> requests.Response:
        barrier.wait()
        return job()

    with ThreadPoolExecutor(len(jobs)) as pool:
        return list(pool.map(run, jobs))


def uploader(tracked: TrackedServer, filename: str, data: bytes) -> Callable[[], requests.Response]:
    name, version = filename.split("-")[:2]
    return lambda: upload(tracked.server, filename, data, name=name, version=version)


def upload_workers(tracked: TrackedServer) -> Counter[int]:
    """How many ``POST /simple/`` each worker process answered, from the access log."""
    lines = tracked.access_log.read_text().splitlines()
    return Counter(int(line.split()[0]) for line in lines if re.search(r'"POST /simple/ ', line))


def assert_index_agrees_with_storage(tracked: TrackedServer) -> None:
    """The remote and the local index list exactly the stored files, with their hashes, and
    every file once; the listing says the same."""
    root = tracked.server.root
    remote_path = storage_dir(root) / "index.json"
    remote, local = parsed_index(remote_path), parsed_index(local_index_path(root))
    assert local == remote, "the local index differs from the remote index"
    stored = stored_distributions(root)
    assert set(remote.entries) == set(stored), (
        f"index and storage disagree: only listed {set(remote.entries) - set(stored)}, "
        f"only stored {set(stored) - set(remote.entries)}"
    )
    assert_index_matches_storage(root, remote)
    for path in (remote_path, local_index_path(root)):
        keys = Counter(
            filename
            for text in index_texts(path)
            for filename in re.findall(r'^"([^"]+)":\{', text, flags=re.MULTILINE)
        )
        assert keys and max(keys.values()) == 1, f"{path}: a file is in it twice: {keys}"
    shown = listing(tracked.server)
    listed = Counter(filename for files in shown.values() for filename, _ in files)
    assert set(listed) == set(stored) and max(listed.values()) == 1, listed
    for files in shown.values():
        for filename, sha256 in files:
            assert sha256 == sha256_hex(stored[filename]), filename
    assert not temp_files(root), temp_files(root)


def test_parallel_uploads_of_different_files_are_each_listed_once(tracked: TrackedServer) -> None:
    files = {
        wheel_name(f"conc-{i % 4}", f"1.{i}"): wheel_bytes(f"conc-{i % 4}", f"1.{i}")
        for i in range(PARALLEL)
    }
    responses = all_at_once([uploader(tracked, name, data) for name, data in files.items()])
    for (filename, _), response in zip(files.items(), responses, strict=True):
        assert response.status_code == 200, (filename, response.status_code, response.text)
        assert response.text == f"Published {filename}\n"
    stored = stored_distributions(tracked.server.root)
    for filename, data in files.items():
        assert stored[filename] == data, f"{filename} is stored with other bytes"
    assert_index_agrees_with_storage(tracked)


def test_parallel_uploads_of_one_filename_store_exactly_one_of_them(tracked: TrackedServer) -> None:
    filename = wheel_name("same-pkg", "1.0")
    same = wheel_bytes("same-pkg", "1.0", payload=b"the same bytes")
    contents = [same] * (PARALLEL // 2) + [
        wheel_bytes("same-pkg", "1.0", payload=f"different bytes {i}".encode())
        for i in range(PARALLEL // 2)
    ]
    random.Random(6).shuffle(contents)
    responses = all_at_once([uploader(tracked, filename, data) for data in contents])

    folder = storage_dir(tracked.server.root) / "same-pkg"
    assert sorted(p.name for p in folder.iterdir()) == [filename, f"{filename}.metadata"], (
        "more than one copy (or a temp file) of the contested file"
    )
    stored = (folder / filename).read_bytes()
    assert stored in contents, "the stored file is none of the uploads"
    outcomes = []
    for data, response in zip(contents, responses, strict=True):
        if data == stored:
            assert response.status_code == 200, (response.status_code, response.text)
            outcomes.append(response.text)
        else:
            assert response.status_code == 409, (response.status_code, response.text)
            assert "already stored with different content" in response.text, response.text
    assert outcomes.count(f"Published {filename}\n") == 1, outcomes
    assert outcomes.count(f"{filename} is already stored\n") == len(outcomes) - 1, outcomes
    assert_index_agrees_with_storage(tracked)
    entry = parsed_index(local_index_path(tracked.server.root)).entries[filename]
    assert entry.sha256 == sha256_hex(stored) and entry.size == len(stored)


def test_the_uploads_went_through_several_workers(tracked: TrackedServer) -> None:
    """What the two tests above prove is about several processes racing, not one."""
    by_worker = upload_workers(tracked)
    assert sum(by_worker.values()) >= 2 * PARALLEL, by_worker
    assert len(by_worker) >= 2, f"every upload went to one worker: {by_worker}"
