"""Uploads with the real ``twine upload``, ``uv publish`` and ``poetry publish``."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from tests.dists import make_sdist, make_wheel
from tests.e2e.clients import (
    assert_listed,
    client_env,
    download,
    output,
    poetry_publish,
    project_links,
    report,
    secret_for,
    sha256_of,
    twine_upload,
    uv_publish,
)
from tests.server import RunningServer

pytestmark = pytest.mark.e2e

Publish = Callable[
    [RunningServer, Sequence[Path], "str | None", Path], subprocess.CompletedProcess[str]
]


def _twine(
    server: RunningServer, files: Sequence[Path], password: str | None, tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    return twine_upload(server, files, password, client_env(tmp_path))


def _uv(
    server: RunningServer, files: Sequence[Path], password: str | None, tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    return uv_publish(server, files, password, client_env(tmp_path))


def _poetry(
    server: RunningServer, files: Sequence[Path], password: str | None, tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    return poetry_publish(server, files, password, client_env(tmp_path), tmp_path / "project")


PUBLISHERS: dict[str, Publish] = {"twine": _twine, "uv": _uv, "poetry": _poetry}
CLIENTS = pytest.mark.parametrize("client", list(PUBLISHERS))


def _dists(directory: Path, project: str, version: str = "1.0") -> list[Path]:
    return [make_wheel(directory, project, version), make_sdist(directory, project, version)]


@CLIENTS
def test_upload_with_write_secret_is_listed_with_its_sha256(
    server: RunningServer, tmp_path: Path, client: str
) -> None:
    """A wheel and an sdist uploaded with the write secret appear on the project page."""
    project = f"listed-by-{client}"
    files = _dists(tmp_path / "dist", project)
    result = PUBLISHERS[client](server, files, server.secret("local", "write"), tmp_path)
    assert result.returncode == 0, report(result)
    assert_listed(server, project, files)
    for path in files:
        assert download(server, project, path.name) == path.read_bytes()


@CLIENTS
def test_upload_with_wrong_secret_is_refused_and_not_listed(
    server: RunningServer, tmp_path: Path, client: str
) -> None:
    """A wrong secret gets a 401; the client fails and nothing is published."""
    project = f"wrong-secret-{client}"
    files = _dists(tmp_path / "dist", project)
    result = PUBLISHERS[client](server, files, secret_for(server, "wrong"), tmp_path)
    assert result.returncode != 0, report(result)
    assert "401" in output(result), report(result)
    assert project_links(server, project) == {}


@CLIENTS
def test_upload_with_read_secret_is_refused_with_403(
    server: RunningServer, tmp_path: Path, client: str
) -> None:
    """The read secret opens the repository but may not upload: 403, nothing published."""
    project = f"read-secret-{client}"
    files = _dists(tmp_path / "dist", project)
    result = PUBLISHERS[client](server, files, server.secret("local", "read"), tmp_path)
    assert result.returncode != 0, report(result)
    assert "403" in output(result), report(result)
    assert project_links(server, project) == {}


@CLIENTS
def test_upload_without_credential_is_refused(
    server: RunningServer, tmp_path: Path, client: str
) -> None:
    """No credential at all: the client fails (twine before sending) and nothing is published."""
    project = f"anonymous-{client}"
    files = _dists(tmp_path / "dist", project)
    result = PUBLISHERS[client](server, files, None, tmp_path)
    assert result.returncode != 0, report(result)
    assert project_links(server, project) == {}


@CLIENTS
def test_reupload_of_the_same_files_succeeds(
    server: RunningServer, tmp_path: Path, client: str
) -> None:
    """Uploading identical bytes again is accepted and leaves the listing as it was."""
    project = f"again-by-{client}"
    files = _dists(tmp_path / "dist", project)
    write = server.secret("local", "write")
    first = PUBLISHERS[client](server, files, write, tmp_path)
    assert first.returncode == 0, report(first)
    second = PUBLISHERS[client](server, files, write, tmp_path)
    assert second.returncode == 0, report(second)
    assert set(project_links(server, project)) == {path.name for path in files}
    assert_listed(server, project, files)


@CLIENTS
def test_upload_of_different_bytes_under_a_published_filename_is_refused(
    server: RunningServer, tmp_path: Path, client: str
) -> None:
    """A published file never changes: other bytes under its name fail, the original stays."""
    project = f"conflict-by-{client}"
    original = make_wheel(tmp_path / "original", project, "1.0", payload="original")
    changed = make_wheel(tmp_path / "changed", project, "1.0", payload="changed")
    assert original.name == changed.name
    assert sha256_of(original) != sha256_of(changed)
    write = server.secret("local", "write")
    first = PUBLISHERS[client](server, [original], write, tmp_path)
    assert first.returncode == 0, report(first)
    second = PUBLISHERS[client](server, [changed], write, tmp_path)
    assert second.returncode != 0, report(second)
    assert "409" in output(second), report(second)
    stored = download(server, project, original.name)
    assert hashlib.sha256(stored).hexdigest() == sha256_of(original)
    assert_listed(server, project, [original])


def test_twine_reports_the_409_body_saying_the_file_already_exists(
    server: RunningServer, tmp_path: Path
) -> None:
    """With --verbose, twine shows the server's explanation of the conflict."""
    env = client_env(tmp_path)
    original = make_wheel(tmp_path / "original", "twine-verbose", "1.0", payload="a")
    changed = make_wheel(tmp_path / "changed", "twine-verbose", "1.0", payload="b")
    write = server.secret("local", "write")
    assert twine_upload(server, [original], write, env).returncode == 0
    result = twine_upload(server, [changed], write, env, "--verbose")
    assert result.returncode != 0, report(result)
    assert "409" in output(result), report(result)
    assert "File already exists" in output(result), report(result)


def test_uv_publish_reports_the_server_message_for_a_conflict(
    server: RunningServer, tmp_path: Path
) -> None:
    """uv prints the 409 body, which says the file already exists."""
    env = client_env(tmp_path)
    original = make_wheel(tmp_path / "original", "uv-conflict-message", "1.0", payload="a")
    changed = make_wheel(tmp_path / "changed", "uv-conflict-message", "1.0", payload="b")
    write = server.secret("local", "write")
    assert uv_publish(server, [original], write, env).returncode == 0
    result = uv_publish(server, [changed], write, env)
    assert result.returncode != 0, report(result)
    assert "File already exists" in output(result), report(result)


def test_uv_publish_with_check_url_finishes_and_skips_files_already_published(
    server: RunningServer, tmp_path: Path
) -> None:
    """``uv publish --check-url`` reads the index around its uploads and exits 0 both times."""
    env = client_env(tmp_path)
    project = "uv-checked"
    files = _dists(tmp_path / "dist", project)
    write = server.secret("local", "write")
    check = ["--check-url", server.credentials_url("local", "read")]
    first = uv_publish(server, files, write, env, *check)
    assert first.returncode == 0, report(first)
    assert_listed(server, project, files)
    second = uv_publish(server, files, write, env, *check)
    assert second.returncode == 0, report(second)
    for path in files:
        assert f"File {path.name} already exists, skipping" in output(second), report(second)
    assert_listed(server, project, files)


def test_uv_publish_with_check_url_refuses_a_local_file_that_differs_from_the_index(
    server: RunningServer, tmp_path: Path
) -> None:
    """uv compares the index's #sha256= with the local file and stops before uploading."""
    env = client_env(tmp_path)
    project = "uv-checked-conflict"
    original = make_wheel(tmp_path / "original", project, "1.0", payload="a")
    changed = make_wheel(tmp_path / "changed", project, "1.0", payload="b")
    write = server.secret("local", "write")
    check = ["--check-url", server.credentials_url("local", "read")]
    assert uv_publish(server, [original], write, env, *check).returncode == 0
    result = uv_publish(server, [changed], write, env, *check)
    assert result.returncode != 0, report(result)
    assert download(server, project, original.name) == original.read_bytes()


UPLOAD_PATHS = {"/simple/": "slash", "/simple": "bare", "/": "root"}


@pytest.mark.parametrize("upload_path", list(UPLOAD_PATHS))
def test_twine_upload_is_accepted_at_every_upload_url(
    server: RunningServer, tmp_path: Path, upload_path: str
) -> None:
    """``/simple/``, ``/simple`` and ``/`` all take uploads, without redirecting twine."""
    project = f"uploaded-at-{UPLOAD_PATHS[upload_path]}"
    files = _dists(tmp_path / "dist", project)
    result = twine_upload(
        server,
        files,
        server.secret("local", "write"),
        client_env(tmp_path),
        repository_url=f"{server.url}{upload_path}",
    )
    assert result.returncode == 0, report(result)
    assert_listed(server, project, files)
