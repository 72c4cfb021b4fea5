"""What an idle server's workers hold: the libraries of the command line, of trusted
publishing, of the client commands and of backends no repository uses stay out of them, each
a few megabytes a worker would otherwise carry."""

from __future__ import annotations

import os
from pathlib import Path

import requests

from tests.hardening.support import HTTP_TIMEOUT, wait_for_workers
from tests.ops.loaded_modules import FOLDER_VARIABLE, HOOK
from tests.server import start_server

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
# Each a few megabytes, and each used by no idle worker of the embedded default: typer and
# pydantic by the command line, requests by the client commands and trusted publishing's key
# fetching, PyJWT and cryptography by its token exchange and attestation checks, boto3 by S3
# repositories, docutils by project descriptions (rendered when a project page asks).
UNUSED = frozenset(
    {
        "typer",
        "pydantic",
        "rich",
        "requests",
        "urllib3",
        "jwt",
        "cryptography",
        "pypi_attestations",
        "boto3",
        "botocore",
        "docutils",
        "readme_renderer",
    }
)


def test_idle_workers_do_not_import_libraries_they_do_not_use(tmp_path: Path) -> None:
    dumps = tmp_path / "modules"
    dumps.mkdir()
    path = os.pathsep.join(filter(None, [str(REPOSITORY_ROOT), os.environ.get("PYTHONPATH")]))
    server = start_server(
        tmp_path / "root",
        "--extra_index_url=",
        f"--post_worker_init={HOOK}",
        env={"PYTHONPATH": path, FOLDER_VARIABLE: str(dumps)},
    )
    try:
        wait_for_workers(server, 2)
        read = ("local", server.secret("local", "read"))
        for page in ("/simple/", "/simple/nothing/", "/pypi/nothing/json", "/", "/login/"):
            requests.get(server.url + page, auth=read, timeout=HTTP_TIMEOUT)
    finally:
        server.stop()

    workers = [listing.read_text().split() for listing in dumps.glob("*.txt")]
    assert len(workers) == 2, server.log()
    for modules in workers:
        assert sorted({name.split(".")[0] for name in modules} & UNUSED) == []
