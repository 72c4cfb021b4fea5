"""The installed ``private_pypi`` command: help, errors, plugin commands, update_index, env mode."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from tests.dists import make_sdist, make_wheel
from tests.server import STARTUP_SECONDS, RunningServer, free_port, start_server

PRIVATE_PYPI = Path(sys.executable).parent / "private_pypi"
ENV_PREFIX = "PRIVATE_PYPI_COMMAND"


def clean_environ(**extra: str) -> dict[str, str]:
    """The test's environment without any PRIVATE_PYPI_COMMAND* variable, plus ``extra``."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    return {**environ, "COLUMNS": "200", **extra}


def run(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(PRIVATE_PYPI), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env or clean_environ(),
        timeout=60,
        check=False,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    """Exit code 2 and one ``Error: ...`` line naming each fragment, no traceback."""
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    assert "Traceback" not in result.stderr + result.stdout
    for fragment in fragments:
        assert fragment in lines[0]


def local_server_args(tmp_path: Path) -> list[str]:
    """``server ROOT`` bound to a free loopback port, so a server that does start is harmless."""
    return ["server", str(tmp_path / "root"), "--host", "127.0.0.1", f"--port={free_port()}"]


def init_team(tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return run(
        "fs.init_pkg_repo",
        "--name",
        "team",
        "--config",
        "c.toml",
        "--admin_secret",
        "a.toml",
        cwd=tmp_path,
    )


@pytest.fixture
def team(tmp_path: Path) -> dict[str, str]:
    """Repository ``team`` made by ``fs.init_pkg_repo``: its files and secrets."""
    result = init_team(tmp_path)
    assert result.returncode == 0, result.stderr
    config = tomllib.loads((tmp_path / "c.toml").read_text())["team"]
    return {
        "config": str(tmp_path / "c.toml"),
        "admin_secret": str(tmp_path / "a.toml"),
        "read_secret": config["read_secret"],
        "write_secret": config["write_secret"],
        "stdout": result.stdout,
    }


def test_help_lists_the_core_and_plugin_commands() -> None:
    result = run("--help")
    assert result.returncode == 0
    for command in ("server", "update_index", "export", "import", "fs.init_pkg_repo"):
        assert command in result.stdout


@pytest.mark.parametrize(
    ("config", "fragments"),
    [
        (None, ["nowhere.toml", "does not exist"]),
        ("[team\n", ["config.toml", "not valid TOML"]),
        (
            '[team]\ntype = "no_such_store"\n',
            ["config.toml", "[team]", "installed backends: ", "file_system"],
        ),
        ('[team]\ntype = "file_system"\ncolour = "red"\n', ["[team]", "unknown key 'colour'"]),
    ],
    ids=["missing-file", "malformed", "unknown-type", "unknown-key"],
)
def test_server_with_an_unusable_config_exits_2_with_a_one_line_message(
    tmp_path: Path, config: str | None, fragments: list[str]
) -> None:
    path = tmp_path / ("nowhere.toml" if config is None else "config.toml")
    if config is not None:
        path.write_text(config)
    result = run(*local_server_args(tmp_path), "--config", str(path))
    assert_one_line_error(result, *fragments)


@pytest.mark.parametrize("flag", ["--no_such_setting=1", "--timeout=soon"])
def test_server_with_a_bad_gunicorn_setting_names_it_without_a_traceback(
    tmp_path: Path, flag: str
) -> None:
    result = run(*local_server_args(tmp_path), flag)
    assert result.returncode != 0
    assert flag[2:].split("=")[0] in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


@pytest.mark.parametrize("flag", ["--no_such_setting=1", "--timeout=soon"])
def test_server_with_a_bad_gunicorn_setting_exits_2_with_a_one_line_message(
    tmp_path: Path, flag: str
) -> None:
    result = run(*local_server_args(tmp_path), flag)
    assert_one_line_error(result, flag[2:].split("=")[0])


def test_init_pkg_repo_writes_private_files_whose_secrets_a_server_accepts(
    tmp_path: Path, team: dict[str, str]
) -> None:
    for name in ("config", "admin_secret"):
        assert Path(team[name]).stat().st_mode & 0o777 == 0o600
    assert tomllib.loads(Path(team["admin_secret"]).read_text()) == {
        "team": {"type": "file_system", "raw": team["write_secret"]}
    }
    assert team["read_secret"] != team["write_secret"]
    assert team["read_secret"] not in team["stdout"]
    assert team["write_secret"] not in team["stdout"]

    server = start_server(
        tmp_path / "root",
        "--config",
        team["config"],
        "--admin_secret",
        team["admin_secret"],
        "--extra_index_url=",
    )
    try:
        read = requests.get(server.simple_url, auth=("team", team["read_secret"]), timeout=5)
        assert read.status_code == 200
        wheel = make_wheel(tmp_path / "dist", "demo-pkg", "1.0")
        upload = requests.post(
            server.simple_url,
            auth=("team", team["write_secret"]),
            data={":action": "file_upload", "protocol_version": "1", "name": "demo-pkg"},
            files={"content": (wheel.name, wheel.read_bytes())},
            timeout=10,
        )
        assert upload.status_code == 200, upload.text
        wrong = requests.get(server.simple_url, auth=("team", "guess"), timeout=5)
        assert wrong.status_code == 401
        embedded = requests.get(server.simple_url, auth=("local", "guess"), timeout=5)
        assert embedded.status_code == 401
    finally:
        server.stop()


def test_init_pkg_repo_refuses_a_repository_that_already_exists(
    tmp_path: Path, team: dict[str, str]
) -> None:
    before = Path(team["config"]).read_bytes()
    result = init_team(tmp_path)
    assert result.returncode != 0
    assert "already exists" in result.stderr + result.stdout
    assert Path(team["config"]).read_bytes() == before


def test_init_pkg_repo_on_an_existing_repository_exits_2_with_a_one_line_message(
    tmp_path: Path, team: dict[str, str]
) -> None:
    assert_one_line_error(init_team(tmp_path), "[team] already exists")


def test_init_pkg_repo_that_fails_changes_neither_file(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text('[team]\ntype = "file_system"\nraw = "old"\n')
    result = init_team(tmp_path)
    assert result.returncode != 0
    assert not (tmp_path / "c.toml").exists()


def store_dists(root: Path, tmp_path: Path) -> list[Path]:
    """Place a wheel, an sdist and a stray non-distribution file in ``team``'s storage."""
    storage = root / "cache" / "team" / "storage"
    dists = [
        make_wheel(tmp_path / "dist", "demo-pkg", "1.0"),
        make_sdist(tmp_path / "dist", "other-pkg", "2.0"),
    ]
    for dist, project in zip(dists, ["demo-pkg", "other-pkg"], strict=True):
        (storage / project).mkdir(parents=True, exist_ok=True)
        (storage / project / dist.name).write_bytes(dist.read_bytes())
    (storage / "demo-pkg" / "README.txt").write_text("not a distribution\n")
    return dists


def test_update_index_rebuilds_the_index_that_a_server_then_lists(
    tmp_path: Path, team: dict[str, str]
) -> None:
    root = tmp_path / "root"
    wheel, sdist = store_dists(root, tmp_path)
    result = run(
        "update_index",
        "file_system",
        "team",
        "--secret",
        team["write_secret"],
        "--root",
        str(root),
        "--config",
        team["config"],
    )
    assert result.returncode == 0, result.stderr
    assert "Indexed 2 files of 2 projects in 'team'" in result.stdout

    server = start_server(root, "--config", team["config"], "--admin_secret", team["admin_secret"])
    try:
        auth = ("team", team["read_secret"])
        listing = requests.get(server.simple_url, auth=auth, timeout=5)
        assert 'href="demo-pkg/"' in listing.text
        assert 'href="other-pkg/"' in listing.text
        for project, dist in [("demo-pkg", wheel), ("other-pkg", sdist)]:
            page = requests.get(f"{server.simple_url}{project}/", auth=auth, timeout=5)
            sha256 = hashlib.sha256(dist.read_bytes()).hexdigest()
            assert f"{dist.name}#sha256={sha256}" in page.text
            download = requests.get(f"{server.simple_url}{project}/{dist.name}", auth=auth)
            assert download.content == dist.read_bytes()
    finally:
        server.stop()


def test_update_index_takes_settings_from_flags_without_a_config(
    tmp_path: Path, team: dict[str, str]
) -> None:
    root = tmp_path / "root"
    store_dists(root, tmp_path)
    result = run(
        "update_index",
        "file_system",
        "team",
        "--secret",
        team["write_secret"],
        "--root",
        str(root),
        f"--write_secret={team['write_secret']}",
    )
    assert result.returncode == 0, result.stderr
    assert "Indexed 2 files" in result.stdout


def test_update_index_refuses_a_config_table_of_another_type(
    tmp_path: Path, team: dict[str, str]
) -> None:
    result = run("update_index", "github", "team", "--secret", "x", "--config", team["config"])
    assert_one_line_error(result, "[team]", "'file_system'")


def test_update_index_with_the_read_secret_exits_2_and_writes_no_index(
    tmp_path: Path, team: dict[str, str]
) -> None:
    root = tmp_path / "root"
    store_dists(root, tmp_path)
    result = run(
        "update_index",
        "file_system",
        "team",
        "--secret",
        team["read_secret"],
        "--root",
        str(root),
        "--config",
        team["config"],
    )
    assert_one_line_error(result, "no write permission", "'team'")
    assert not (root / "cache" / "team" / "storage" / "index.json").exists()
    assert not (root / "cache" / "team" / "index.json").exists()


def test_update_index_without_a_secret_exits_2(tmp_path: Path) -> None:
    result = run("update_index", "file_system", "team", "--root", str(tmp_path))
    assert_one_line_error(result, "--secret")


def test_update_index_reads_the_secret_from_secret_env(tmp_path: Path) -> None:
    result = run(
        "update_index",
        "file_system",
        "team",
        "--secret_env",
        "TEAM_SECRET",
        "--write_secret=s3cret",
        "--root",
        str(tmp_path),
        env=clean_environ(TEAM_SECRET="s3cret"),
    )
    assert result.returncode == 0, result.stderr
    assert "Indexed 0 files of 0 projects" in result.stdout


def test_server_serves_config_text_of_two_repositories(tmp_path: Path) -> None:
    text = "".join(
        f'[repo{i}]\ntype = "file_system"\nread_secret = "r{i}{"x" * 42}"\n'
        f'write_secret = "w{i}{"x" * 42}"\n'
        for i in range(2)
    )
    server = start_server(
        tmp_path / "root", "--config_or_admin_secret_can_be_text", "--config", text
    )
    try:
        for i in range(2):
            auth = (f"repo{i}", f"r{i}{'x' * 42}")
            assert requests.get(server.simple_url, auth=auth, timeout=5).status_code == 200
    finally:
        server.stop()


# --- Environment mode ---


@pytest.fixture
def env_mode_server(tmp_path: Path) -> Iterator[RunningServer]:
    """``private_pypi`` with no arguments, configured by PRIVATE_PYPI_COMMAND* variables."""
    root = tmp_path / "root"
    port = free_port()
    environ = clean_environ(
        PRIVATE_PYPI_COMMAND="server",
        PRIVATE_PYPI_COMMAND_ROOT=str(root),
        PRIVATE_PYPI_COMMAND_HOST="127.0.0.1",
        PRIVATE_PYPI_COMMAND_PORT=str(port),
        PRIVATE_PYPI_COMMAND_EXTRA_INDEX_URL="",
        PRIVATE_PYPI_COMMAND_DEBUG="true",  # a boolean flag
        PRIVATE_PYPI_COMMAND_GRACEFUL_TIMEOUT="7",  # not a flag: a gunicorn setting
    )
    log_path = tmp_path / "env-server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [str(PRIVATE_PYPI)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=environ,
            start_new_session=True,
        )
    server = RunningServer(root=root, port=port, process=process, log_path=log_path)
    deadline = time.monotonic() + STARTUP_SECONDS
    try:
        while True:
            if process.poll() is not None:
                raise AssertionError(f"server exited with {process.returncode}:\n{server.log()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"server did not start:\n{server.log()}")
            try:
                requests.get(f"{server.url}/login/", timeout=1)
                break
            except (requests.ConnectionError, requests.Timeout):
                time.sleep(0.1)
        server.repositories = tomllib.loads((root / "embedded" / "config.toml").read_text())
        yield server
    finally:
        server.stop()


def test_environment_mode_serves_as_the_variables_say(env_mode_server: RunningServer) -> None:
    server = env_mode_server
    assert requests.get(server.simple_url, timeout=5).status_code == 401
    listing = requests.get(server.simple_url, auth=("local", server.secret()), timeout=5)
    assert listing.status_code == 200
    missing = requests.get(
        f"{server.simple_url}requests/", auth=("local", server.secret()), timeout=5
    )
    assert missing.status_code == 404  # PRIVATE_PYPI_COMMAND_EXTRA_INDEX_URL= disabled it
    log = server.log()
    assert "[DEBUG]" in log
    assert "graceful_timeout: 7" in log


def test_environment_mode_with_an_unknown_command_exits_2() -> None:
    result = run(env=clean_environ(PRIVATE_PYPI_COMMAND="serve"))
    assert_one_line_error(result, "'serve' is not a command")


def test_update_index_on_a_store_that_fails_says_so_in_one_line(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "a-file"
    not_a_folder.write_text("in the way\n")
    result = run(
        "update_index",
        "file_system",
        "team",
        "--secret=s3cret",
        "--write_secret=s3cret",
        f"--storage_path={not_a_folder}",
        "--root",
        str(tmp_path),
    )
    assert result.returncode == 1, result
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith("Error: the package storage failed:")
    assert "Traceback" not in result.stderr
    assert "s3cret" not in result.stderr


SERVER_COMMANDS = {  # every command that talks to a server, with its own arguments
    "import": ["import", "{folder}", "--repository", "local"],
    "token list": ["token", "list", "--repository", "local"],
    "token create": ["token", "create", "--repository", "local", "--scope", "read"],
    "yank": ["yank", "alpha", "1.0", "--repository", "local"],
    "status": ["status", "alpha", "archived", "--repository", "local"],
}


def server_command(name: str, tmp_path: Path, *flags: str) -> list[str]:
    folder = tmp_path / "packages"
    if not folder.exists():
        make_wheel(folder, "alpha", "1.0")
    return [arg.format(folder=folder) for arg in SERVER_COMMANDS[name]] + list(flags)


@pytest.mark.parametrize("command", SERVER_COMMANDS)
def test_a_url_holding_a_secret_is_refused_and_the_secret_never_printed(
    tmp_path: Path, command: str
) -> None:
    secret = hashlib.sha256(b"the write secret").hexdigest()
    env = clean_environ(WS=secret)
    port = free_port()  # nothing listens: nothing may be sent either
    for url in (
        f"http://local:{secret}@127.0.0.1:{port}",
        f"http://{secret}@127.0.0.1:{port}/simple/",
        f"ftp://user:{secret}@127.0.0.1:{port}",
        f"http:local:{secret}@127.0.0.1:{port}",
        f"local:{secret}@127.0.0.1:{port}",
    ):
        args = server_command(command, tmp_path, "--secret_env", "WS", "--url", url)
        result = run(*args, env=env)
        assert_one_line_error(result, "--url must not hold a user name or secret", "--secret_env")
        assert secret not in result.stdout + result.stderr, result.stderr


@pytest.mark.parametrize("command", SERVER_COMMANDS)
def test_a_url_that_does_not_parse_or_has_a_query_exits_2_and_says_why(
    tmp_path: Path, command: str
) -> None:
    cases = {
        "http://[::1": "--url is not a URL",
        "http://127.0.0.1:99999": "--url is not a URL",
        "http://127.0.0.1:8888/?token=s3cret-in-the-query": "without a query or fragment",
        "http://127.0.0.1:8888/#x": "without a query or fragment",
        "ftp://127.0.0.1:8888": "--url must be the server's http(s) URL",
        "127.0.0.1:8888": "--url must be the server's http(s) URL",
    }
    for url, message in cases.items():
        result = run(*server_command(command, tmp_path, "--secret", "s3cret", "--url", url))
        assert_one_line_error(result, message)
        assert "s3cret-in-the-query" not in result.stderr


class HostileServer(ThreadingHTTPServer):
    """A server whose every answer tries to drive the terminal of whoever prints it."""

    WORDS = "\x1b]0;owned\x07\x1b[2J\rbad\u202etxt.exe\nuploaded: forged line"

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _HostileHandler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"


class _HostileHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self._answer(403)  # "may not read": import sends every file

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self._answer(400)

    def _answer(self, status: int) -> None:
        body = HostileServer.WORDS.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def hostile_server() -> Iterator[HostileServer]:
    server = HostileServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("command", SERVER_COMMANDS)
def test_what_a_server_answers_is_printed_escaped_and_cannot_drive_the_terminal(
    tmp_path: Path, command: str, hostile_server: HostileServer
) -> None:
    args = server_command(command, tmp_path, "--secret", "s3cret", "--url", hostile_server.url)
    result = run(*args)
    assert result.returncode in (1, 2), result
    printed = result.stdout + result.stderr
    for raw in ("\x1b", "\x07", "\r", "\u202e"):
        assert raw not in printed, repr(printed)
    assert "\\x1b]0;owned\\x07\\x1b[2J\\rbad\\u202etxt.exe\\nuploaded: forged line" in printed
    assert not any(line.startswith("uploaded:") for line in printed.splitlines())
