"""Workers killed with SIGKILL in the middle of an upload and of index writes, then the server
restarted on the same ROOT: no partial file, no temp file left visible, a valid index that
lists only stored files with their hashes, and the interrupted uploads succeed afterwards."""

from __future__ import annotations

import hashlib
import http.client
import itertools
import os
import random
import signal
import subprocess
import threading
import time
import warnings
import zipfile
from collections.abc import Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from unittest import mock

import pytest

from private_pypi_core.config import load_repositories, read_toml
from private_pypi_core.index import IndexEntry
from private_pypi_core.repository import Repository, Upload
from tests.hardening.support import (
    BOUNDARY,
    UPLOAD_CONTENT_TYPE,
    ServerSpec,
    assert_index_matches_storage,
    assert_same_snapshot,
    form_fields,
    fs_table,
    listing,
    local_index_path,
    multipart,
    parsed_index,
    pids_with_open_file,
    sha256_hex,
    snapshot,
    storage_dir,
    temp_files,
    upload,
    wait_for_workers,
    wait_until,
    wheel_bytes,
    wheel_name,
    worker_pids,
    write_auth,
)
from tests.server import RunningServer, private_pypi_command

BIG_MB = 200
MB = 1 << 20


def make_big_wheel(directory: Path) -> Path:
    """A real 200 MB wheel (one stored, uncompressed member), written quickly."""
    path = directory / wheel_name("big-pkg", "1.0")
    directory.mkdir(parents=True, exist_ok=True)
    block = os.urandom(MB)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as wheel:
        wheel.writestr(
            "big_pkg-1.0.dist-info/METADATA",
            "Metadata-Version: 2.1\nName: big-pkg\nVersion: 1.0\n\n",
        )
        with wheel.open("big_pkg/blob.bin", "w", force_zip64=True) as blob:
            for _ in range(BIG_MB):
                blob.write(block)
    return path


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while block := stream.read(8 * MB):
            digest.update(block)
    return digest.hexdigest()


class StreamedUpload(threading.Thread):
    """POSTs a file with a declared Content-Length, block by block; slowly if asked."""

    def __init__(self, server: RunningServer, path: Path, delay: float) -> None:
        super().__init__(daemon=True)
        self.server, self.path, self.delay = server, path, delay
        self.stop = threading.Event()
        self.status: int | None = None
        self.text = ""
        self.error: BaseException | None = None

    def body(self) -> Generator[bytes, None, None]:
        form = multipart(
            form_fields(
                self.path.name,
                b"",
                name="big-pkg",
                version="1.0",
                sha256_digest=None,
                md5_digest=None,
                blake2_256_digest=None,
            ),
            [("content", self.path.name, b"")],
        )
        head, tail = form[: -len(f"\r\n--{BOUNDARY}--\r\n")], f"\r\n--{BOUNDARY}--\r\n".encode()
        yield head
        with open(self.path, "rb") as stream:
            while not self.stop.is_set() and (block := stream.read(MB)):
                yield block
                if self.delay:
                    time.sleep(self.delay)
        yield tail

    def length(self) -> int:
        parts = self.body()
        head = next(parts)
        parts.close()
        return len(head) + self.path.stat().st_size + len(f"\r\n--{BOUNDARY}--\r\n")

    def run(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=120)
        try:
            connection.request(
                "POST",
                "/simple/",
                body=self.body(),
                headers={
                    **write_auth(self.server),
                    "Content-Type": UPLOAD_CONTENT_TYPE,
                    "Content-Length": str(self.length()),
                },
            )
            response = connection.getresponse()
            self.status, self.text = response.status, response.read().decode()
        except (OSError, http.client.HTTPException) as error:
            self.error = error
        finally:
            connection.close()


def test_a_worker_killed_mid_upload_leaves_no_partial_file(tmp_path: Path) -> None:
    spec = ServerSpec(tmp_path / "root", {"local": fs_table("local")}, ("--workers=3",))
    root = spec.root
    big = make_big_wheel(tmp_path / "dist")
    server = spec.start()
    try:
        wait_for_workers(server, 3)
        seed = wheel_bytes("demo-pkg", "1.0")
        assert upload(
            server, wheel_name("demo-pkg", "1.0"), seed, name="demo-pkg", version="1.0"
        ).ok
        before = snapshot(server)

        streaming = StreamedUpload(server, big, delay=0.02)
        streaming.start()

        def received_enough() -> bool:
            return any(p.stat().st_size >= 16 * MB for p in (root / "tmp").glob(".upload-*.tmp"))

        assert wait_until(received_enough, timeout=30), "the upload never reached 16 MB"
        holders = pids_with_open_file(worker_pids(server), root / "tmp")
        assert len(holders) == 1, f"expected one worker receiving the upload: {holders}"
        (victim,) = holders
        os.kill(victim, signal.SIGKILL)
        streaming.stop.set()
        streaming.join(timeout=60)
        assert streaming.status != 200, "the killed upload was answered 200"
        partial = list((root / "tmp").iterdir())
        assert partial, "the killed worker's partial temp file should be in ROOT/tmp until restart"
        assert all(p.stat().st_size < big.stat().st_size for p in partial)
        # Nothing partial reached the store, while the other workers go on serving.
        assert_same_snapshot(before, snapshot(server))
        assert not (storage_dir(root) / "big-pkg").exists()
    finally:
        server.stop()

    server = spec.start()
    try:
        assert not temp_files(root), f"temp files left after the restart: {temp_files(root)}"
        assert_same_snapshot(before, snapshot(server))
        assert_index_matches_storage(root, parsed_index(local_index_path(root)))
        # The same upload now goes through whole.
        streaming = StreamedUpload(server, big, delay=0)
        streaming.start()
        streaming.join(timeout=120)
        assert streaming.status == 200, (streaming.status, streaming.text, streaming.error)
        assert streaming.text == f"Published {big.name}\n"
        expected = file_sha256(big)
        assert dict(listing(server)["big-pkg"])[big.name] == expected
        assert file_sha256(storage_dir(root) / "big-pkg" / big.name) == expected
        assert not temp_files(root)
    finally:
        server.stop()
        # 400 MB that pytest would otherwise keep for a few runs.
        big.unlink()
        (storage_dir(root) / "big-pkg" / big.name).unlink(missing_ok=True)


# --- Temp files of writes cut short, and the restart that removes them -----------------------


@pytest.fixture(scope="module")
def restarted(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[RunningServer, list[Path]]]:
    """A server stopped, given the temp files a SIGKILL leaves at each kind of write, and
    restarted on the same ROOT."""
    spec = ServerSpec(
        tmp_path_factory.mktemp("leftovers") / "root",
        {"local": fs_table("local")},
        ("--workers=2",),
    )
    server = spec.start()
    try:
        data = wheel_bytes("demo-pkg", "1.0")
        assert upload(
            server, wheel_name("demo-pkg", "1.0"), data, name="demo-pkg", version="1.0"
        ).ok
    finally:
        server.stop()
    root, storage = spec.root, storage_dir(spec.root)
    (root / "initialized").mkdir(exist_ok=True)
    planted = [
        root / "tmp" / ".upload-k1ll3d.tmp",  # receive_upload
        root / "tmp" / ".upload-k1ll3d.metadata",
        root / "cache" / "local" / ".index.json.k1ll3d.tmp",  # the local index (atomic_write)
        root / "initialized" / ".config.toml.k1ll3d.tmp",  # /initialize/ (atomic_write)
        root / "cache" / "local" / "index-parts" / f".0ab-{'0' * 32}.k1ll3d.tmp",  # its parts
        storage / ".index.json.k1ll3d.tmp",  # the remote index in the fs store (atomic_write)
        storage / "demo-pkg" / ".demo_pkg-2.0-py3-none-any.whl.k1ll3d.tmp",  # _copy_in
        storage / ".index-parts" / f".0ab-{'0' * 32}.k1ll3d.tmp",  # write_index_part
    ]
    for path in planted:
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"half written")
    server = spec.start()
    try:
        yield server, planted
    finally:
        server.stop()


def test_restart_removes_temp_files_of_uploads_and_local_writes(
    restarted: tuple[RunningServer, list[Path]],
) -> None:
    server, planted = restarted
    left = [path for path in planted[:5] if path.exists()]
    assert not left, f"left after the restart: {left}"
    assert not list((server.root / "tmp").iterdir())
    assert [name for name, _ in listing(server)["demo-pkg"]] == [wheel_name("demo-pkg", "1.0")]


def test_restart_removes_temp_files_of_writes_in_the_store(
    restarted: tuple[RunningServer, list[Path]],
) -> None:
    _, planted = restarted
    left = [path for path in planted[5:] if path.exists()]
    assert not left, f"left in the store after the restart: {left}"


# --- A crash between the remote index write and the local one ---------------------------------


def publish_until_remote_index_written(spec: ServerSpec, filename: str, data: bytes) -> None:
    """The server's own publish, cut off (as by SIGKILL) right after the store's index write."""
    configs = load_repositories(read_toml(str(spec.config_path), what="config"))
    repository = Repository(configs["local"].config, spec.root.resolve())
    work = spec.root.parent / "half-published"
    work.mkdir(exist_ok=True)
    path, metadata_path = work / filename, work / f"{filename}.metadata"
    path.write_bytes(data)
    metadata = b"Metadata-Version: 2.1\nName: demo-pkg\nVersion: 2.0\n\n"
    metadata_path.write_bytes(metadata)
    entry = IndexEntry(
        filename=filename,
        project="demo-pkg",
        version="2.0",
        sha256=sha256_hex(data),
        md5=hashlib.md5(data, usedforsecurity=False).hexdigest(),
        blake2b_256=hashlib.blake2b(data, digest_size=32).hexdigest(),
        size=len(data),
        upload_time=datetime.now(UTC),
        metadata_sha256=sha256_hex(metadata),
    )
    with (
        mock.patch.object(repository, "_store_local", side_effect=SystemExit("SIGKILL")),
        pytest.raises(SystemExit),
    ):
        repository.publish(Upload(entry=entry, path=path, metadata_path=metadata_path))


def test_a_crash_between_the_remote_and_local_index_writes_is_healed_by_a_retry(
    tmp_path: Path,
) -> None:
    spec = ServerSpec(tmp_path / "root", {"local": fs_table("local")}, ("--workers=2",))
    server = spec.start()
    try:
        seed = wheel_bytes("demo-pkg", "1.0")
        assert upload(
            server, wheel_name("demo-pkg", "1.0"), seed, name="demo-pkg", version="1.0"
        ).ok
    finally:
        server.stop()
    filename, data = wheel_name("demo-pkg", "2.0"), wheel_bytes("demo-pkg", "2.0")
    publish_until_remote_index_written(spec, filename, data)
    assert filename in parsed_index(storage_dir(spec.root) / "index.json").entries
    assert filename not in parsed_index(local_index_path(spec.root)).entries

    server = spec.start()
    try:
        # The client never got an answer, so it uploads again.
        response = upload(server, filename, data, name="demo-pkg", version="2.0")
        assert response.status_code == 200, response.text
        listed = dict(listing(server)["demo-pkg"])
        assert listed.get(filename) == sha256_hex(data), f"{filename} is not listed: {listed}"
    finally:
        server.stop()


# --- Workers killed again and again while the index is being written --------------------------

BULK_FILES = 2000
CHURN_SECONDS = 5.0


def fill_store(spec: ServerSpec) -> None:
    """BULK_FILES tiny wheels copied into the store, indexed by ``private_pypi update_index``."""
    storage = storage_dir(spec.root)
    for i in range(BULK_FILES):
        project = f"bulk-{i % 40}"
        folder = storage / project
        folder.mkdir(parents=True, exist_ok=True)
        version = f"1.{i}"
        path = folder / wheel_name(project, version)
        path.write_bytes(wheel_bytes(project, version))
        # The core metadata beside it, as a publish leaves it: update_index reads it.
        metadata = f"Metadata-Version: 2.1\nName: {project}\nVersion: {version}\n\n"
        (folder / f"{path.name}.metadata").write_text(metadata)
    result = subprocess.run(
        [
            *private_pypi_command(),
            "update_index",
            "file_system",
            "local",
            "--secret",
            spec.secret("local", "write"),
            "--config",
            str(spec.config_path),
            "--root",
            str(spec.root),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Indexed {BULK_FILES} files" in result.stdout


def test_workers_killed_during_index_writes_leave_a_valid_index(tmp_path: Path) -> None:
    spec = ServerSpec(tmp_path / "root", {"local": fs_table("local")}, ("--workers=3",))
    root = spec.root
    fill_store(spec)
    server = spec.start()
    counter, lock = itertools.count(), threading.Lock()
    attempted: dict[str, bytes] = {}
    acknowledged: set[str] = set()
    kills: list[int] = []
    stop = threading.Event()

    def keep_uploading() -> None:
        while not stop.is_set():
            with lock:
                i = next(counter)
            filename, data = wheel_name("churn", f"1.{i}"), wheel_bytes("churn", f"1.{i}")
            with lock:
                attempted[filename] = data
            try:
                response = upload(server, filename, data, name="churn", version=f"1.{i}")
            except OSError:
                continue
            if response.status_code == 200:
                with lock:
                    acknowledged.add(filename)

    def keep_killing() -> None:
        rng = random.Random(4)
        while not stop.wait(rng.uniform(0.1, 0.3)):
            pids = worker_pids(server)
            if pids:
                victim = rng.choice(pids)
                try:
                    os.kill(victim, signal.SIGKILL)
                    kills.append(victim)
                except ProcessLookupError:
                    pass

    try:
        wait_for_workers(server, 3)
        threads = [threading.Thread(target=keep_uploading) for _ in range(4)]
        threads.append(threading.Thread(target=keep_killing))
        for thread in threads:
            thread.start()
        time.sleep(CHURN_SECONDS)
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        server.stop()
    assert len(kills) >= 10, kills
    assert len(acknowledged) >= 10, f"only {len(acknowledged)} of {len(attempted)} uploads answered"

    server = spec.start()
    try:
        store_temp = [p for p in temp_files(root) if storage_dir(root) in p.parents]
        assert not [p for p in temp_files(root) if p not in store_temp], temp_files(root)
        if store_temp:  # see test_restart_removes_temp_files_of_writes_in_the_store
            warnings.warn(f"temp files left in the store: {store_temp}", stacklevel=1)
        remote = parsed_index(storage_dir(root) / "index.json")
        local = parsed_index(local_index_path(root))
        assert_index_matches_storage(root, remote)
        assert_index_matches_storage(root, local)
        assert set(local.entries) <= set(remote.entries)
        assert acknowledged <= set(local.entries), acknowledged - set(local.entries)
        assert sum(e.project.startswith("bulk-") for e in local.entries.values()) == BULK_FILES
        listed = dict(listing(server)["churn"])
        for filename in acknowledged:
            assert listed[filename] == sha256_hex(attempted[filename])

        # The uploads that were cut off succeed now.
        def retry(filename: str) -> tuple[str, int, str]:
            version = filename.split("-")[1]
            response = upload(server, filename, attempted[filename], name="churn", version=version)
            return filename, response.status_code, response.text

        with ThreadPoolExecutor(8) as pool:
            for filename, status, text in pool.map(retry, sorted(set(attempted) - acknowledged)):
                assert status == 200, (filename, status, text)
        remote = parsed_index(storage_dir(root) / "index.json")
        assert set(attempted) <= set(remote.entries)
        assert_index_matches_storage(root, remote)
    finally:
        server.stop()
