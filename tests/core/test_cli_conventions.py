"""The command line as a new user meets it: start-up lines that work as printed, update_index
on the embedded default, both spellings of every flag, help that reads as the README does."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import requests

from tests.core.test_cli import clean_environ, run
from tests.server import start_server


def test_the_start_up_lines_work_as_printed(tmp_path: Path) -> None:
    server = start_server(tmp_path / "root", "--extra_index_url=")
    try:
        lines = server.log().splitlines()
        assignments = [
            line.strip() for line in lines if line.strip().startswith(("READ_", "WRITE_"))
        ]
        assert len(assignments) == 2, server.log()
        shell = "; ".join([*assignments, 'echo "$READ_SECRET $WRITE_SECRET"'])
        read, write = subprocess.run(
            ["bash", "-c", shell], capture_output=True, text=True, check=True, timeout=30
        ).stdout.split()
        assert requests.get(server.simple_url, auth=("local", read), timeout=10).status_code == 200
        assert read not in server.log() and write not in server.log()
        install = next(line for line in lines if "pip install" in line)
        assert '"http://local:$READ_SECRET@127.0.0.1:' in install
    finally:
        server.stop()


def test_update_index_on_the_embedded_default_needs_only_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    server = start_server(root, "--extra_index_url=")
    server.stop()
    write = server.secret("local", "write")
    result = run("update_index", "file_system", "local", "--secret", write, "--root", str(root))
    assert result.returncode == 0, result
    assert "Indexed 0 files" in result.stdout


def test_a_refused_update_index_says_why_and_leaves_no_cache_behind(tmp_path: Path) -> None:
    result = run("update_index", "file_system", "local", "--secret", "guess", cwd=tmp_path)
    assert result.returncode == 2
    assert "no write permission" in result.stderr and "--config" in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "flags",
    [
        ["--auth-read-expires=10", "--extra-index-url="],
        ["--auth_read_expires=10", "--extra_index_url="],
        ["--session-max-age", "60", "--extra_index_url", ""],
    ],
    ids=["kebab", "snake", "mixed"],
)
def test_every_multi_word_flag_takes_both_spellings(tmp_path: Path, flags: list[str]) -> None:
    server = start_server(tmp_path / "root", *flags)
    try:
        assert requests.get(server.simple_url, timeout=10).status_code == 401
    finally:
        server.stop()


def test_help_names_arguments_as_the_readme_does_and_shows_no_types_of_switches() -> None:
    server = run("server", "--help", env=clean_environ(COLUMNS="100"))
    update = run("update_index", "--help", env=clean_environ(COLUMNS="100"))
    assert "{ROOT}" in server.stdout and "{TYPE} {NAME}" in update.stdout
    assert "<bool>" not in server.stdout + update.stdout
    assert "--auth_read_expires, --auth-read-expires" in server.stdout
