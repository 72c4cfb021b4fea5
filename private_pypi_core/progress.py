"""Progress of long command-line work: a rich bar on a terminal, a plain line now and then
otherwise (a CI log, a pipe), so a long ``update_index``, ``export`` or ``import`` shows it is
alive, and quick work shows nothing.

Library functions take a ``Progress`` and report to it; the base class shows nothing, so a
caller that wants no output passes nothing. Commands make one with ``progress_bar``. Reports may
come from several threads at once.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from rich.progress import Progress as RichProgress
    from rich.progress import TaskID

PLAIN_LINE_SECONDS = 5.0  # off a terminal: a line at most this often, none for quick work


class Progress:
    """Counts done and to do; this base class shows nothing."""

    def add_total(self, count: int) -> None:
        """``count`` more items to do (the total may grow as the work is discovered)."""

    def advance(self, count: int = 1) -> None:
        """``count`` more items done."""


class PlainLines(Progress):
    """``<label>: <done> of <total> <unit> (<percent>)`` on ``stream``, at most once every
    ``interval`` seconds and the first only ``interval`` seconds in: a log gets a line now and
    then, and nothing at all for work quicker than that."""

    def __init__(
        self, label: str, unit: str, stream: TextIO, interval: float = PLAIN_LINE_SECONDS
    ) -> None:
        self.label, self.unit, self.stream, self.interval = label, unit, stream, interval
        self.total = self.done = 0
        self._last_line = time.monotonic()
        self._lock = threading.Lock()

    def add_total(self, count: int) -> None:
        with self._lock:
            self.total += count

    def advance(self, count: int = 1) -> None:
        with self._lock:
            self.done += count
            now = time.monotonic()
            if now - self._last_line < self.interval:
                return
            self._last_line = now
            # Under the lock: lines from several threads come out whole and in order.
            print(self._line(), file=self.stream, flush=True)

    def _line(self) -> str:
        if not self.total:
            return f"{self.label}: {self.done:,} {self.unit}"
        percent = 100 * self.done // self.total
        return f"{self.label}: {self.done:,} of {self.total:,} {self.unit} ({percent}%)"


class Bar(Progress):
    """A task of a rich progress bar; it pulses until a total is known."""

    def __init__(self, bar: RichProgress, task: TaskID) -> None:
        self._bar = bar
        self._task = task
        self._total = 0
        self._lock = threading.Lock()

    def add_total(self, count: int) -> None:
        with self._lock:
            self._total += count
            self._bar.update(self._task, total=self._total)

    def advance(self, count: int = 1) -> None:
        self._bar.advance(self._task, count)  # rich's Progress takes its own lock


@contextlib.contextmanager
def progress_bar(
    label: str, unit: str = "files", stream: TextIO | None = None
) -> Iterator[Progress]:
    """A ``Progress`` shown on ``stream`` (standard error): a bar on a terminal, plain lines
    elsewhere. The bar goes away when the block ends (the command then says what it did).
    Lines the block ``print``s meanwhile show above it (``typer.echo`` would write beneath it:
    click holds on to the terminal's stream, which the bar does not see)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
    from rich.progress import Progress as RichProgress

    stream = stream if stream is not None else sys.stderr
    console = Console(file=stream)
    # isatty, not rich's own guess: FORCE_COLOR, which CI services set, would draw a bar in a log.
    if not stream.isatty() or console.is_dumb_terminal:
        yield PlainLines(label, unit, stream)
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(unit),
        TimeRemainingColumn(),
    )
    with RichProgress(*columns, console=console, transient=True) as bar:
        yield Bar(bar, bar.add_task(label, total=None))
