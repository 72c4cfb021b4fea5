from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from private_pypi_s3.backend import S3Backend
from private_pypi_s3.config import S3Config
from tests.s3.seaweed import (
    ACCESS_KEY_ID_ENV,
    SECRET_ACCESS_KEY_ENV,
    Seaweed,
    WeedCannotRun,
    start_seaweed,
)

READ_SECRET = "s3-read-secret"
WRITE_SECRET = "s3-write-secret"
# What boto3 would otherwise pick up from this machine: keys, profiles, endpoints, and the
# instance metadata service (off loopback, which the tests cannot reach).
AWS_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
)


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seaweed]:
    """One SeaweedFS for the whole session; every test works under its own prefix."""
    store = start_or_fail(tmp_path_factory.mktemp("seaweed"))
    try:
        with s3_environment(store):
            yield store
    finally:
        store.stop()


def start_or_fail(directory: Path) -> Seaweed:
    """A SeaweedFS with its data in ``directory``; a test that cannot have one fails."""
    try:
        return start_seaweed(directory)
    except WeedCannotRun as error:
        pytest.fail(f"SeaweedFS cannot run here: {error}")


@contextmanager
def s3_environment(store: Seaweed) -> Iterator[None]:
    """The environment with ``store``'s key in the variables the test configs name, and
    nothing boto3 would otherwise pick up from this machine."""
    with pytest.MonkeyPatch.context() as env:
        for name in AWS_VARIABLES:
            env.delenv(name, raising=False)
        env.setenv("AWS_CONFIG_FILE", os.devnull)
        env.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
        env.setenv("AWS_EC2_METADATA_DISABLED", "true")
        env.setenv(ACCESS_KEY_ID_ENV, store.access_key_id)
        env.setenv(SECRET_ACCESS_KEY_ENV, store.secret_access_key)
        yield


def fresh_prefix() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


def make_config(seaweed: Seaweed, prefix: str, **overrides: str | int) -> S3Config:
    settings = {**seaweed.settings(prefix), **overrides}
    return S3Config(
        name="team", type="s3", read_secret=READ_SECRET, write_secret=WRITE_SECRET, **settings
    )


def make_backend(
    seaweed: Seaweed, root: Path, prefix: str | None = None, **overrides: str | int
) -> S3Backend:
    return S3Backend(make_config(seaweed, prefix or fresh_prefix(), **overrides), root)
