"""``private_pypi import``: a folder of wheels and sdists published through a real server's
upload API, installable with pip; safe to run again and to resume; conflicts and broken files
reported while the rest goes through."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
from pathlib import Path
from typing import BinaryIO

import pytest

from private_pypi_core import upload_client
from private_pypi_core.backend import DistFile
from private_pypi_core.dists import parse_dist_filename
from private_pypi_core.importer import find_distributions, import_files
from private_pypi_core.upload_client import Answer, LocalFileError, Outcome, UploadClient
from tests.core.test_cli import clean_environ, run
from tests.dists import make_sdist, make_wheel
from tests.e2e.clients import (
    assert_listed,
    client_env,
    download,
    pip_install,
    project_links,
    publish_with_requests,
    report,
)
from tests.server import RunningServer, free_port, start_server

pytestmark = pytest.mark.e2e

SECRET_VARIABLE = "IMPORT_TEST_SECRET"


def pypiserver_root(folder: Path) -> list[Path]:
    """A pypiserver root: a folder per project and files at the top, a README and a hidden
    file beside them; its distribution files."""
    dists = [
        make_wheel(folder / "alpha", "alpha", "1.0"),
        make_sdist(folder / "alpha", "alpha", "1.0"),
        make_wheel(folder / "alpha", "alpha", "1.1"),
        make_wheel(folder, "beta-pkg", "2.0"),
        make_sdist(folder, "beta-pkg", "2.0"),
    ]
    (folder / "README.txt").write_text("packages of the team\n")
    (folder / ".htaccess").write_text("deny from all\n")
    return dists


def import_into(
    server: RunningServer, folder: Path, *flags: str, secret: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``private_pypi import FOLDER`` into ``local``, the secret (by default the write
    secret) read from a variable."""
    value = secret if secret is not None else server.secret("local", "write")
    return run(
        "import",
        str(folder),
        "--repository",
        "local",
        "--url",
        server.url,
        "--secret_env",
        SECRET_VARIABLE,
        *flags,
        env=clean_environ(**{SECRET_VARIABLE: value}),
    )


def audit_lines(server: RunningServer) -> list[str]:
    path = server.root / "audit" / "local.jsonl"
    return path.read_text().splitlines() if path.exists() else []


def test_import_publishes_a_pypiserver_root_that_pip_then_installs(
    server: RunningServer, tmp_path: Path
) -> None:
    dists = pypiserver_root(tmp_path / "packages")
    result = import_into(server, tmp_path / "packages")
    assert result.returncode == 0, report(result)
    assert result.stdout.strip() == (
        f"Imported {tmp_path / 'packages'} into 'local': 5 uploaded, 0 skipped (already there), "
        "0 conflicting, 0 failed. Left out 1 other file."
    )
    # The README is named with why it is left out; the hidden file is not worth a word; a pipe
    # gets no progress lines for work this quick.
    assert result.stderr.splitlines() == [
        "left out: README.txt: invalid filename 'README.txt': expected a wheel (.whl) or an sdist "
        "(.tar.gz or .zip)"
    ]
    assert_listed(server, "alpha", dists[:3])
    assert_listed(server, "beta-pkg", dists[3:])
    target = tmp_path / "installed"
    env = client_env(tmp_path)
    installed = pip_install(target, server.credentials_url(), env, "alpha", "beta-pkg==2.0")
    assert installed.returncode == 0, report(installed)
    assert "VERSION = '1.1'" in (target / "alpha" / "__init__.py").read_text()
    assert "VERSION = '2.0'" in (target / "beta_pkg" / "__init__.py").read_text()


def test_running_it_again_skips_everything_and_sends_nothing(
    server: RunningServer, tmp_path: Path
) -> None:
    folder = tmp_path / "packages"
    pypiserver_root(folder)
    assert import_into(server, folder).returncode == 0
    uploads = audit_lines(server)
    again = [
        import_into(server, folder),
        import_into(server, folder, "--secret-env", SECRET_VARIABLE, "--jobs", "1"),
        run(  # environment mode, as in a container
            env=clean_environ(
                PRIVATE_PYPI_COMMAND="import",
                PRIVATE_PYPI_COMMAND_DIR=str(folder),
                PRIVATE_PYPI_COMMAND_REPOSITORY="local",
                PRIVATE_PYPI_COMMAND_URL=server.url,
                PRIVATE_PYPI_COMMAND_SECRET=server.secret("local", "write"),
            )
        ),
    ]
    for result in again:
        assert result.returncode == 0, report(result)
        assert "0 uploaded, 5 skipped (already there), 0 conflicting, 0 failed" in result.stdout
    assert audit_lines(server) == uploads, "a skipped file is never sent again"


def test_an_import_cut_short_by_the_server_resumes_where_it_stopped(
    server: RunningServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(upload_client, "BACKOFF_SECONDS", 0.01)
    folder = tmp_path / "packages"
    pypiserver_root(folder)
    files, _ = find_distributions(folder)
    client = StopsServer(server, after_uploads=2)
    summary = import_files(files, client, jobs=1, report=lambda line: None)
    assert not summary.all_good
    assert summary.stopped.startswith("cannot reach")
    assert summary.not_tried == 3
    assert "2 uploaded" in summary.line() and "run it again to resume" in summary.line()
    restarted = start_server(server.root, "--extra_index_url=")
    try:
        result = import_into(restarted, folder)
        assert result.returncode == 0, report(result)
        assert "3 uploaded, 2 skipped (already there), 0 conflicting, 0 failed" in result.stdout
        assert len(audit_lines(restarted)) == 5, "each file was sent once"
    finally:
        restarted.stop()


class StopsServer(UploadClient):
    """A client whose server goes away after ``after_uploads`` uploads, as in a crash."""

    def __init__(self, server: RunningServer, after_uploads: int) -> None:
        super().__init__(server.url, ("local", server.secret("local", "write")))
        self.server = server
        self.left = after_uploads

    def upload(self, stream: BinaryIO, length: int, dist: DistFile, sha256: str) -> Answer:
        answer = super().upload(stream, length, dist, sha256)
        self.left -= 1
        if self.left == 0:
            self.server.stop()
        return answer


def test_half_a_folder_already_published_gets_the_other_half(
    server: RunningServer, tmp_path: Path
) -> None:
    dists = pypiserver_root(tmp_path / "packages")
    for path in dists[::2]:
        dist = parse_dist_filename(path.name)
        publish_with_requests(server, path, dist.project, dist.version)
    result = import_into(server, tmp_path / "packages")
    assert result.returncode == 0, report(result)
    assert "2 uploaded, 3 skipped (already there), 0 conflicting, 0 failed" in result.stdout
    assert_listed(server, "alpha", dists[:3])
    assert_listed(server, "beta-pkg", dists[3:])


@pytest.mark.parametrize("credential", ["write secret", "upload-only token"])
def test_a_file_of_a_published_name_with_other_bytes_is_a_conflict_and_not_overwritten(
    server: RunningServer, tmp_path: Path, credential: str
) -> None:
    published = make_wheel(tmp_path / "published", "alpha", "1.0", payload="original")
    publish_with_requests(server, published, "alpha", "1.0")
    sdist = make_sdist(tmp_path / "published", "alpha", "1.0")
    publish_with_requests(server, sdist, "alpha", "1.0")
    folder = tmp_path / "packages"
    changed = make_wheel(folder, "alpha", "1.0", payload="rebuilt")
    make_sdist(folder, "alpha", "1.0").write_bytes(sdist.read_bytes())
    new = make_wheel(folder, "gamma", "3.0")
    # A token that may upload but not read: the server itself says what it has.
    secret = create_upload_token(server) if credential == "upload-only token" else None
    result = import_into(server, folder, secret=secret)
    assert result.returncode == 1, report(result)
    assert "1 uploaded, 1 skipped (already there), 1 conflicting, 0 failed" in result.stdout
    conflicts = [line for line in result.stderr.splitlines() if line.startswith("conflict:")]
    assert len(conflicts) == 1 and changed.name in conflicts[0], result.stderr
    assert download(server, "alpha", changed.name) == published.read_bytes()
    assert_listed(server, "gamma", [new])


def create_upload_token(server: RunningServer) -> str:
    created = run(
        "token",
        "create",
        "--url",
        server.url,
        "--repository",
        "local",
        "--secret",
        server.secret("local", "write"),
        "--scope",
        "upload",
    )
    assert created.returncode == 0, report(created)
    return created.stdout.strip()


def test_a_broken_file_is_reported_with_the_servers_words_and_the_rest_go_through(
    server: RunningServer, tmp_path: Path
) -> None:
    folder = tmp_path / "packages"
    good = make_wheel(folder, "alpha", "1.0")
    (folder / "broken-1.0-py3-none-any.whl").write_bytes(b"not a zip at all")
    # An sdist whose metadata names another project than its filename.
    make_sdist(tmp_path / "elsewhere", "beta", "1.0").rename(folder / "gamma-1.0.tar.gz")
    result = import_into(server, folder)
    assert result.returncode == 1, report(result)
    assert "1 uploaded, 0 skipped (already there), 0 conflicting, 2 failed" in result.stdout
    failures = sorted(line for line in result.stderr.splitlines() if line.startswith("failed:"))
    assert failures[0].startswith("failed: broken-1.0-py3-none-any.whl: 400: ")
    assert "not a valid archive" in failures[0]
    assert failures[1].startswith("failed: gamma-1.0.tar.gz: 400: ")
    assert "Traceback" not in result.stderr
    assert_listed(server, "alpha", [good])
    assert project_links(server, "broken") == {} and project_links(server, "gamma") == {}


def test_bad_usage_exits_2_and_says_why(server: RunningServer, tmp_path: Path) -> None:
    folder = tmp_path / "packages"
    make_wheel(folder, "alpha", "1.0")
    (tmp_path / "empty").mkdir()
    unreachable = f"http://127.0.0.1:{free_port()}"
    cases = {
        "give --secret": ["import", str(folder), "--repository", "local", "--url", server.url],
        "answered 401": [*_flags(folder, server.url), "--secret", "not-the-secret"],
        "holds no wheel": [*_flags(tmp_path / "empty", server.url), "--secret", "x"],
        "does not exist": [*_flags(tmp_path / "missing", server.url), "--secret", "x"],
        "--jobs": [*_flags(folder, server.url), "--secret", "x", "--jobs", "0"],
        "cannot reach": [*_flags(folder, unreachable), "--secret", "x"],
        "--url must be": [*_flags(folder, f"127.0.0.1:{server.port}"), "--secret", "x"],
    }
    for message, args in cases.items():
        result = run(*args)
        assert result.returncode == 2, report(result)
        assert message in result.stderr and "Traceback" not in result.stderr, report(result)
    assert project_links(server, "alpha") == {}


def _flags(folder: Path, url: str) -> list[str]:
    return ["import", str(folder), "--repository", "local", "--url", url]


def test_the_audit_trail_names_each_imported_file(server: RunningServer, tmp_path: Path) -> None:
    dists = pypiserver_root(tmp_path / "packages")
    assert import_into(server, tmp_path / "packages").returncode == 0
    events = [json.loads(line) for line in audit_lines(server)]
    assert sorted(event["filename"] for event in events) == sorted(p.name for p in dists)
    assert {event["action"] for event in events} == {"upload"}


def test_links_fifos_and_other_files_not_regular_are_left_out_and_never_read(
    server: RunningServer, tmp_path: Path
) -> None:
    folder = tmp_path / "packages"
    good = make_wheel(folder, "alpha", "1.0")
    (folder / "x-1.0-py3-none-any.whl").symlink_to("/etc/passwd")
    (folder / "envpkg-1.0.tar.gz").symlink_to("/proc/self/environ")  # the importer's secret
    (folder / "inside-1.0-py3-none-any.whl").symlink_to(good)
    make_wheel(tmp_path / "elsewhere", "beta", "1.0")
    (folder / "linked").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    os.mkfifo(folder / "fifo-1.0.tar.gz")  # reading it would wait for a writer forever
    result = import_into(server, folder)
    assert result.returncode == 0, report(result)
    assert result.stdout.strip().endswith(
        "1 uploaded, 0 skipped (already there), 0 conflicting, 0 failed. Left out 5 other files."
    )
    link = "a symbolic link, not followed: only files in the folder are sent"
    assert sorted(result.stderr.splitlines()) == [
        f"left out: envpkg-1.0.tar.gz: {link}",
        "left out: fifo-1.0.tar.gz: not a regular file",
        f"left out: inside-1.0-py3-none-any.whl: {link}",
        f"left out: linked: {link}",
        f"left out: x-1.0-py3-none-any.whl: {link}",
    ]
    assert_listed(server, "alpha", [good])
    for project in ("x", "envpkg", "inside", "beta", "fifo"):
        assert project_links(server, project) == {}, project
    log = server.log()
    assert "root:" not in log and SECRET_VARIABLE not in log
    assert server.secret("local", "write") not in log


def test_a_file_longer_than_its_measured_length_is_never_sent_past_it(
    server: RunningServer,
) -> None:
    # A file of /proc measures 0 bytes and holds more: what follows its length must never
    # reach the server, which would take it for a request of its own.
    smuggled = b"GET /simple/smuggled-request/ HTTP/1.1\r\nHost: x\r\n\r\nSECRET=hunter2\0"
    client = UploadClient(server.url, ("local", server.secret("local", "write")))
    dist = parse_dist_filename("envpkg-1.0.tar.gz")
    empty = hashlib.sha256(b"").hexdigest()
    with pytest.raises(LocalFileError, match="changed while it was read"):
        client.upload(io.BytesIO(smuggled), 0, dist, empty)
    assert project_links(server, "envpkg") == {}
    assert "smuggled-request" not in server.log() and "hunter2" not in server.log()


class ChangesFile(UploadClient):
    """A client whose file changes (``grows`` or not) between its hash and its upload."""

    def __init__(self, server: RunningServer, folder: Path, grows: bool) -> None:
        super().__init__(server.url, ("local", server.secret("local", "write")))
        self.folder = folder
        self.grows = grows

    def upload(self, stream: BinaryIO, length: int, dist: DistFile, sha256: str) -> Answer:
        if dist.project == "alpha":
            path = self.folder / dist.filename
            with path.open("r+b") as changed:
                if self.grows:
                    changed.seek(0, os.SEEK_END)
                    changed.write(b"more")
                else:
                    changed.truncate(length // 2)
        return super().upload(stream, length, dist, sha256)


@pytest.mark.parametrize("grows", [True, False], ids=["grows", "shrinks"])
def test_a_file_that_changes_while_it_is_sent_fails_alone_and_is_not_published(
    server: RunningServer, tmp_path: Path, grows: bool
) -> None:
    folder = tmp_path / "packages"
    make_wheel(folder, "alpha", "1.0")
    other = make_wheel(folder, "beta", "1.0")
    files, _ = find_distributions(folder)
    reported: list[str] = []
    client = ChangesFile(server, folder, grows)
    summary = import_files(files, client, jobs=1, report=reported.append)
    assert [file.dist.project for file in summary.done[Outcome.FAILED]] == ["alpha"]
    assert len(reported) == 1 and "changed while it was read" in reported[0], reported
    assert "it was not published" in reported[0]
    assert project_links(server, "alpha") == {}
    assert_listed(server, "beta", [other])


def test_names_and_server_words_cannot_drive_the_terminal(
    server: RunningServer, tmp_path: Path
) -> None:
    folder = tmp_path / "packages"
    make_wheel(folder, "alpha", "1.0")
    (folder / "evil\x1b[31m\r\nfake\u202etxt.whl").write_text("not a wheel")
    (folder / "bad\x1b]0;t\x07-1.0.tar.gz").write_text("")
    result = import_into(server, folder)
    assert result.returncode == 0, report(result)
    for raw in ("\x1b", "\x07", "\r", "\u202e"):
        assert raw not in result.stdout + result.stderr, repr(result.stderr)
    lines = sorted(result.stderr.splitlines())
    assert len(lines) == 2 and all(line.startswith("left out: ") for line in lines), lines
    assert lines[0].startswith("left out: bad\\x1b]0;t\\x07-1.0.tar.gz: ")
    assert lines[1].startswith("left out: evil\\x1b[31m\\r\\nfake\\u202etxt.whl: ")
