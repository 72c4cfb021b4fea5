"""Progress of long commands: off a terminal, a plain line now and then and nothing for quick
work; on a terminal, a bar that is gone when the work is done."""

from __future__ import annotations

import io
import re
import threading
import time

import pytest

from private_pypi_core.progress import PlainLines, progress_bar

PLAIN_LINE = re.compile(r"Indexing: [\d,]+ of [\d,]+ files \(\d+%\)")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_quick_work_off_a_terminal_prints_nothing() -> None:
    log = io.StringIO()
    with progress_bar("Indexing", "files", stream=log) as progress:
        progress.add_total(1000)
        for _ in range(1000):
            progress.advance()
    assert log.getvalue() == ""


def test_slow_work_off_a_terminal_prints_plain_lines_now_and_then() -> None:
    log = io.StringIO()
    progress = PlainLines("Indexing", "files", log, interval=0.2)
    progress.add_total(4)
    for _ in range(4):
        time.sleep(0.25)
        progress.advance()
    lines = log.getvalue().splitlines()
    assert len(lines) == 4
    assert all(PLAIN_LINE.fullmatch(line) for line in lines), lines
    assert lines[-1] == "Indexing: 4 of 4 files (100%)"


def test_plain_lines_come_no_more_often_than_the_interval() -> None:
    log = io.StringIO()
    progress = PlainLines("Indexing", "files", log, interval=0.1)
    progress.add_total(1_000_000)
    started = time.monotonic()
    while time.monotonic() - started < 0.45:
        progress.advance()
    assert 3 <= len(log.getvalue().splitlines()) <= 4


def test_plain_lines_without_a_total_count_what_is_done() -> None:
    log = io.StringIO()
    progress = PlainLines("Listing release assets", "assets", log, interval=0)
    progress.advance(1500)
    assert log.getvalue() == "Listing release assets: 1,500 assets\n"


def test_reports_from_many_threads_add_up_and_print_whole_lines() -> None:
    log = io.StringIO()
    progress = PlainLines("Indexing", "files", log, interval=0)
    progress.add_total(8000)

    def work() -> None:
        for _ in range(1000):
            progress.advance()

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lines = log.getvalue().splitlines()
    assert len(lines) == 8000
    assert all(PLAIN_LINE.fullmatch(line) for line in lines)
    assert lines[-1] == "Indexing: 8,000 of 8,000 files (100%)"


def test_on_a_terminal_a_bar_shows_the_count_and_is_gone_at_the_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TERM", "xterm-256color")
    terminal = Terminal()
    with progress_bar("Importing", "files", stream=terminal) as progress:
        progress.add_total(3)
        progress.advance(3)
    shown = terminal.getvalue()
    assert "Importing" in shown and "3/3" in shown
    # Transient: the last thing written moves back up over the bar and erases it.
    assert shown.endswith("\x1b[1A\x1b[2K")


def test_a_dumb_terminal_gets_plain_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "dumb")
    terminal = Terminal()
    with progress_bar("Indexing", "files", stream=terminal) as progress:
        progress.add_total(3)
        progress.advance(3)
    assert terminal.getvalue() == ""
