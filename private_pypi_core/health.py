"""Whether each package repository can be served: its store answers and its local index is
recent. Read from what a worker keeps anyway (its record of stores out of reach, ``outages``,
and the time of the last sync, a file's mtime), so asking costs no store call: a load balancer
may ask every second."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from private_pypi_core import outages
from private_pypi_core.repository import Repository

# Each worker checks every second whether a sync is due, so a healthy index is at most one
# interval old; three intervals mean syncs have failed or stopped. The floor spares a short
# interval from a slow sync.
STALE_AFTER_INTERVALS = 3
MIN_STALE_SECONDS = 30.0

STORE_OUT = "store unreachable"
INDEX_STALE = "index out of date"


@dataclass(frozen=True)
class RepositoryHealth:
    name: str
    store_out: bool
    sync_age: float | None  # seconds since the last sync; None: never synced
    stale_after: float

    @property
    def problem(self) -> str | None:
        """``STORE_OUT`` or ``INDEX_STALE`` when the repository cannot be served as it should."""
        if self.store_out:
            return STORE_OUT
        if self.sync_age is None or self.sync_age > self.stale_after:
            return INDEX_STALE
        return None

    def explain(self) -> str:
        """The problem in full, naming the repository: for the log and for an admin only."""
        if self.problem == INDEX_STALE:
            synced = "never" if self.sync_age is None else f"{self.sync_age:.0f} s ago"
            return f"{self.name}: {INDEX_STALE} (synced {synced}, limit {self.stale_after:.0f} s)"
        return f"{self.name}: {self.problem or 'ready'}"


def assess(repositories: Iterable[Repository]) -> list[RepositoryHealth]:
    now = time.time()
    health = []
    for repository in repositories:
        synced = repository.index_mtime()
        interval = repository.config.sync_index_interval
        health.append(
            RepositoryHealth(
                name=repository.name,
                store_out=outages.is_out(repository),
                sync_age=max(0.0, now - synced) if synced else None,
                stale_after=max(STALE_AFTER_INTERVALS * interval, MIN_STALE_SECONDS),
            )
        )
    return health


def summary(health: list[RepositoryHealth]) -> str:
    """How many repositories fail and why, naming none: what anyone may be told."""
    problems = Counter(h.problem for h in health if h.problem)
    failing = sum(problems.values())
    repositories = f"{len(health)} package {'repository' if len(health) == 1 else 'repositories'}"
    if not failing:
        return f"ready: {repositories}"
    reasons = ", ".join(f"{problem}: {count}" for problem, count in sorted(problems.items()))
    return f"not ready: {failing} of {repositories} ({reasons})"
