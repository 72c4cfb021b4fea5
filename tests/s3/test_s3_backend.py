"""The S3 backend against a real SeaweedFS: the shared conformance suite, then what only S3
has (conditional requests between servers, presigned downloads, multipart uploads)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
import tomli_w
from botocore.awsrequest import AWSResponse

from private_pypi_core.auth_provider import Credential
from private_pypi_core.backend import Access, FileExists, IndexConflict
from private_pypi_core.dists import parse_dist_filename
from private_pypi_core.errors import ConfigError
from private_pypi_core.index_store import ShardCache, read_remote
from private_pypi_core.plugins import installed_backends
from private_pypi_core.repository import Repository
from private_pypi_core.testing import BackendConformance, BackendUnderTest
from private_pypi_s3.backend import S3Backend
from private_pypi_s3.client import PART_BYTES
from tests.s3.conftest import READ_SECRET, WRITE_SECRET, fresh_prefix, make_backend, make_config
from tests.s3.seaweed import ACCESS_KEY_ID_ENV, Seaweed
from tests.server import free_port, private_pypi_command

MB = 1 << 20
WHEEL = parse_dist_filename("demo_pkg-1.0-py3-none-any.whl")


class TestS3Backend(BackendConformance):
    @pytest.fixture
    def subject(self, seaweed: Seaweed, tmp_path: Path) -> BackendUnderTest:
        def unreachable() -> S3Backend:  # an endpoint nothing listens on
            return make_backend(seaweed, tmp_path, endpoint_url=f"http://127.0.0.1:{free_port()}")

        return BackendUnderTest(make_backend(seaweed, tmp_path), broken=unreachable)


def _file(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _big_file(path: Path, size: int, seed: bytes) -> str:
    """Write ``size`` bytes, each MiB different, a MiB at a time; return their sha256."""
    digest = hashlib.sha256()
    block = hashlib.sha256(seed).digest() * (MB // 32)
    with open(path, "wb") as out:
        for i in range(size // MB):
            chunk = i.to_bytes(8, "big") + block[8:]
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


def _read(backend: S3Backend, filename: str) -> bytes:
    with backend.open_file(parse_dist_filename(filename)) as stream:
        data: bytes = stream.read()
    return data


def _servers(seaweed: Seaweed, tmp_path: Path, count: int) -> list[S3Backend]:
    """``count`` backends as separate servers would have them: one prefix, own ROOTs."""
    prefix = fresh_prefix()
    return [make_backend(seaweed, tmp_path / f"root{i}", prefix) for i in range(count)]


def _record_statuses(backend: S3Backend, operation: str) -> list[int]:
    """The HTTP statuses of ``backend``'s ``operation`` requests from now on."""
    statuses: list[int] = []

    def record(http_response: AWSResponse, **kwargs: object) -> None:
        statuses.append(http_response.status_code)

    backend.objects.clients.client.meta.events.register(f"after-call.s3.{operation}", record)
    return statuses


def test_plugin_is_found_through_its_entry_point() -> None:
    assert installed_backends()["s3"] is S3Backend


def test_racing_writes_of_one_filename_store_exactly_one(seaweed: Seaweed, tmp_path: Path) -> None:
    servers = _servers(seaweed, tmp_path, 8)
    start = threading.Barrier(len(servers))

    def write(i: int) -> bytes | None:
        source = _file(tmp_path / f"upload{i}" / WHEEL.filename, f"bytes of server {i}".encode())
        start.wait()
        try:
            servers[i].write_file(WHEEL, source)
        except FileExists:
            return None
        return source.read_bytes()

    with ThreadPoolExecutor(len(servers)) as pool:
        written = [data for data in pool.map(write, range(len(servers))) if data is not None]
    assert len(written) == 1, "exactly one conditional put may succeed"
    assert all(_read(server, WHEEL.filename) == written[0] for server in servers)


def test_index_write_from_another_servers_stale_read_is_refused(
    seaweed: Seaweed, tmp_path: Path
) -> None:
    first, second = _servers(seaweed, tmp_path, 2)
    first.write_index(b"format = 1\n", replaces=None)
    stale = first.read_index()
    second.write_index(b"format = 1\n# second\n", replaces=second.read_index())
    with pytest.raises(IndexConflict):
        first.write_index(b"format = 1\n# first\n", replaces=stale)
    current = first.read_index()
    assert current is not None and current.data == b"format = 1\n# second\n"


def test_concurrent_index_updates_with_retries_lose_nothing(
    seaweed: Seaweed, tmp_path: Path
) -> None:
    servers = _servers(seaweed, tmp_path, 6)
    servers[0].write_index(b"", replaces=None)

    def append(i: int) -> None:
        while True:  # the core's loop: read, change, compare-and-swap, again on a conflict
            current = servers[i].read_index()
            assert current is not None
            try:
                servers[i].write_index(current.data + f"{i}\n".encode(), replaces=current)
                return
            except IndexConflict:
                continue

    with ThreadPoolExecutor(len(servers)) as pool:
        list(pool.map(append, range(len(servers))))
    final = servers[0].read_index()
    assert final is not None
    assert sorted(final.data.decode().split()) == [str(i) for i in range(len(servers))]


def test_unchanged_index_is_answered_from_memory(seaweed: Seaweed, tmp_path: Path) -> None:
    reader, writer = _servers(seaweed, tmp_path, 2)
    writer.write_index(b"format = 1\n", replaces=None)
    statuses = _record_statuses(reader, "GetObject")
    first = reader.read_index()
    again = reader.read_index()
    assert again is first and statuses == [200, 304]
    writer.write_index(b"format = 1\n# changed\n", replaces=writer.read_index())
    changed = reader.read_index()
    assert changed is not None and changed.data == b"format = 1\n# changed\n"
    assert statuses == [200, 304, 200]


def test_index_just_written_is_not_downloaded_again(seaweed: Seaweed, tmp_path: Path) -> None:
    [backend] = _servers(seaweed, tmp_path, 1)
    backend.write_index(b"format = 1\n", replaces=None)
    statuses = _record_statuses(backend, "GetObject")
    index = backend.read_index()
    assert index is not None and index.data == b"format = 1\n"
    assert statuses == [304]


def test_presigned_url_downloads_the_bytes_without_credentials(
    seaweed: Seaweed, tmp_path: Path
) -> None:
    backend = make_backend(seaweed, tmp_path)
    backend.write_file(WHEEL, _file(tmp_path / WHEEL.filename, b"the wheel"))
    url = backend.download_url(WHEEL)
    assert url is not None and url.startswith(seaweed.endpoint_url)
    assert seaweed.secret_access_key not in url
    response = requests.get(url, timeout=10)
    assert (response.status_code, response.content) == (200, b"the wheel")
    unsigned = requests.get(url.partition("?")[0], timeout=10)
    assert unsigned.status_code == 403, "the bucket itself must not be public"


def test_presigned_url_expires(seaweed: Seaweed, tmp_path: Path) -> None:
    backend = make_backend(seaweed, tmp_path, presigned_url_expires=1)
    backend.write_file(WHEEL, _file(tmp_path / WHEEL.filename, b"the wheel"))
    url = backend.download_url(WHEEL)
    assert url is not None
    time.sleep(2.1)
    assert requests.get(url, timeout=10).status_code == 403


def test_stream_mode_serves_the_bytes_through_the_server(seaweed: Seaweed, tmp_path: Path) -> None:
    backend = make_backend(seaweed, tmp_path, download="stream")
    data = os.urandom(3 * MB + 17)
    backend.write_file(WHEEL, _file(tmp_path / WHEEL.filename, data))
    assert backend.download_url(WHEEL) is None
    chunks = []
    with backend.open_file(WHEEL) as stream:
        while chunk := stream.read(MB):
            chunks.append(chunk)
    assert b"".join(chunks) == data and max(map(len, chunks)) <= MB


def test_large_file_is_uploaded_in_parts_with_flat_memory(seaweed: Seaweed, tmp_path: Path) -> None:
    backend = make_backend(seaweed, tmp_path)
    source = tmp_path / WHEEL.filename
    size = 64 * MB
    sha256 = _big_file(source, size, b"large")
    tracemalloc.start()
    try:
        backend.write_file(WHEEL, source)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < size / 4, f"{peak / MB:.1f} MiB held in memory for a {size // MB} MiB upload"
    head = seaweed.client().head_object(
        Bucket=seaweed.bucket, Key=backend.objects.object_key(WHEEL)
    )
    assert head["ContentLength"] == size
    assert head["ETag"].strip('"').endswith(f"-{size // PART_BYTES}"), "a multipart upload"
    digest = hashlib.sha256()
    with backend.open_file(WHEEL) as stream:
        while chunk := stream.read(MB):
            digest.update(chunk)
    assert digest.hexdigest() == sha256


def test_multipart_upload_never_overwrites_and_leaves_no_parts(
    seaweed: Seaweed, tmp_path: Path
) -> None:
    backend = make_backend(seaweed, tmp_path)
    backend.write_file(WHEEL, _file(tmp_path / "small" / WHEEL.filename, b"original"))
    replacement = tmp_path / "big" / WHEEL.filename
    replacement.parent.mkdir()
    _big_file(replacement, 2 * PART_BYTES + MB, b"replacement")
    with pytest.raises(FileExists):
        backend.write_file(WHEEL, replacement)
    assert _read(backend, WHEEL.filename) == b"original"
    uploads = seaweed.client().list_multipart_uploads(
        Bucket=seaweed.bucket, Prefix=backend.objects.s3_config.key_prefix
    )
    assert uploads.get("Uploads", []) == [], "the refused upload's parts are aborted"


def test_files_and_index_live_under_the_prefix(seaweed: Seaweed, tmp_path: Path) -> None:
    prefix = fresh_prefix()
    backend = make_backend(seaweed, tmp_path, f"/{prefix}/")
    backend.write_file(WHEEL, _file(tmp_path / WHEEL.filename, b"wheel"))
    backend.write_index(b"format = 1\n", replaces=None)
    listing = seaweed.client().list_objects_v2(Bucket=seaweed.bucket, Prefix=f"{prefix}/")
    assert sorted(item["Key"] for item in listing["Contents"]) == [
        f"{prefix}/demo-pkg/{WHEEL.filename}",
        f"{prefix}/index.json",
    ]


def test_objects_the_backend_did_not_write_are_not_listed(seaweed: Seaweed, tmp_path: Path) -> None:
    backend = make_backend(seaweed, tmp_path)
    prefix = backend.objects.s3_config.key_prefix
    for key in ("stray.txt", "a/b/c.whl", "other/"):
        seaweed.client().put_object(Bucket=seaweed.bucket, Key=f"{prefix}/{key}", Body=b"x")
    assert list(backend.list_files()) == []


def test_update_index_rebuilds_the_index_from_the_bucket(seaweed: Seaweed, tmp_path: Path) -> None:
    prefix = fresh_prefix()
    backend = make_backend(seaweed, tmp_path, prefix)
    for filename in (WHEEL.filename, "other-2.0.tar.gz"):
        backend.write_file(parse_dist_filename(filename), _file(tmp_path / filename, b"bytes"))
    table = {"type": "s3", **seaweed.settings(prefix), "write_secret": WRITE_SECRET}
    config = _file(tmp_path / "config.toml", tomli_w.dumps({"team": table}).encode())
    result = subprocess.run(
        [
            *private_pypi_command(),
            "update_index",
            "s3",
            "team",
            f"--config={config}",
            f"--secret={WRITE_SECRET}",
            f"--root={tmp_path / 'root'}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    index = read_remote(backend, ShardCache(), label="the remote index").index
    assert set(index.entries) == {WHEEL.filename, "other-2.0.tar.gz"}
    assert index.entries["other-2.0.tar.gz"].sha256 == hashlib.sha256(b"bytes").hexdigest()


def test_standard_credential_chain_is_used_without_named_variables(
    seaweed: Seaweed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", seaweed.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", seaweed.secret_access_key)
    backend = make_backend(seaweed, tmp_path, access_key_id_env="", secret_access_key_env="")
    assert list(backend.list_files()) == []


def test_store_failures_are_os_errors_without_secrets(
    seaweed: Seaweed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WRONG_KEY_ID", seaweed.access_key_id)
    monkeypatch.setenv("WRONG_SECRET", "not-" + seaweed.secret_access_key)
    wrong_key = make_backend(
        seaweed, tmp_path, access_key_id_env="WRONG_KEY_ID", secret_access_key_env="WRONG_SECRET"
    )
    no_bucket = make_backend(seaweed, tmp_path, bucket="no-such-bucket")
    unreachable = make_backend(seaweed, tmp_path, endpoint_url="http://127.0.0.1:9")
    for backend in (wrong_key, no_bucket, unreachable):
        with pytest.raises(OSError) as caught:
            list(backend.list_files())
        assert seaweed.secret_access_key not in str(caught.value)
        with pytest.raises(OSError):
            backend.read_index()
    repository = Repository(wrong_key.config, tmp_path)
    credential = Credential("team", WRITE_SECRET)
    grant = repository.authenticate(credential)
    assert grant is not None and grant.access is Access.WRITE, "auth needs no store"


def test_unusable_settings_fail_when_the_config_is_loaded(
    seaweed: Seaweed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for overrides, message in [
        ({"addressing_style": "sideways"}, "addressing_style"),
        ({"download": "carrier-pigeon"}, "download"),
        ({"bucket": ""}, "bucket"),
        ({"secret_access_key_env": ""}, "access_key_id_env"),
    ]:
        with pytest.raises(ConfigError, match=message):
            make_config(seaweed, "p", **overrides)
    monkeypatch.delenv(ACCESS_KEY_ID_ENV)
    with pytest.raises(ConfigError, match=ACCESS_KEY_ID_ENV):
        make_backend(seaweed, tmp_path)


def test_secrets_stay_out_of_the_config_repr(seaweed: Seaweed) -> None:
    shown = repr(make_config(seaweed, "p"))
    assert READ_SECRET not in shown and WRITE_SECRET not in shown
    assert seaweed.secret_access_key not in shown


def test_boto3_is_imported_only_when_an_s3_repository_is_made(tmp_path: Path) -> None:
    """Every process loads every installed plugin; boto3 (about 16 MB a process) is for those
    that serve an S3 repository."""
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from private_pypi_core.cli import build_command\n"
        "from private_pypi_core.plugins import installed_backends\n"
        "from private_pypi_s3.config import S3Config\n"
        "build_command()\n"
        "backend = installed_backends()['s3']\n"
        "print('botocore' in sys.modules)\n"
        "backend(S3Config(name='team', type='s3', bucket='b'), Path(sys.argv[1]))\n"
        "print('botocore' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "True"]
