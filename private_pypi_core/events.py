"""Index changes, told to the plugins' ``private_pypi_index_changed`` hooks without delaying
or failing the request that made them.

Each process delivers its changes from one background thread, in order, through a bounded
backlog: a hook that fails is logged and the next change is delivered; a slow hook delays only
the changes after it; past ``BACKLOG`` undelivered changes, new ones are dropped and logged.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from private_pypi_core.index import IndexEntry, PackageIndex
from private_pypi_core.plugins import plugin_manager

log = logging.getLogger(__name__)

BACKLOG = 1000


@dataclass(frozen=True)
class IndexChange:
    """What changed in one repository's index, and why.

    ``reason`` is ``"published"``, ``"yanked"``, ``"unyanked"``, ``"synced"``, ``"rebuilt"``
    or ``"proxied"`` (a proxy repository stored what its upstream lists). ``added`` are files
    newly listed, ``removed`` files no longer listed, ``changed`` files listed before and after
    whose entry changed (a yank, its reason, metadata found by a rebuild), as they are now.
    """

    repository: str
    reason: str
    added: tuple[IndexEntry, ...] = ()
    removed: tuple[IndexEntry, ...] = ()
    changed: tuple[IndexEntry, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)


def difference(repository: str, reason: str, old: PackageIndex, new: PackageIndex) -> IndexChange:
    """The change from ``old`` to ``new``."""
    added: list[IndexEntry] = []
    removed: list[IndexEntry] = []
    changed: list[IndexEntry] = []
    for key in old.shards.keys() | new.shards.keys():
        old_shard, new_shard = old.shards.get(key), new.shards.get(key)
        if old_shard is new_shard:  # most of them: a change touches a shard or two
            continue
        before = old_shard.entries if old_shard is not None else {}
        after = new_shard.entries if new_shard is not None else {}
        added.extend(entry for name, entry in after.items() if name not in before)
        removed.extend(entry for name, entry in before.items() if name not in after)
        changed.extend(
            entry for name, entry in after.items() if name in before and before[name] != entry
        )
    return IndexChange(
        repository=repository,
        reason=reason,
        added=_sorted(added),
        removed=_sorted(removed),
        changed=_sorted(changed),
    )


def _sorted(entries: Iterable[IndexEntry]) -> tuple[IndexEntry, ...]:
    return tuple(sorted(entries, key=lambda entry: entry.filename))


class _Dispatcher:
    def __init__(self) -> None:
        self.backlog: queue.Queue[IndexChange] = queue.Queue(maxsize=BACKLOG)
        self.thread: threading.Thread | None = None
        self.lock = threading.Lock()

    def announce(self, change: IndexChange) -> None:
        with self.lock:
            if self.thread is None:
                self.thread = threading.Thread(
                    target=self._deliver, name="private-pypi-index-events", daemon=True
                )
                self.thread.start()
        try:
            self.backlog.put_nowait(change)
        except queue.Full:
            log.warning(
                "repository %s: %d index changes wait for plugins; dropped one (%s)",
                change.repository,
                BACKLOG,
                change.reason,
            )

    def _deliver(self) -> None:
        while True:
            change = self.backlog.get()
            for hook in plugin_manager().hook.private_pypi_index_changed.get_hookimpls():
                arguments = {"change": change}
                try:
                    hook.function(*(arguments[name] for name in hook.argnames))
                except Exception:
                    log.exception(
                        "plugin %s: private_pypi_index_changed failed (repository %s, %s)",
                        hook.plugin_name,
                        change.repository,
                        change.reason,
                    )


_dispatcher = _Dispatcher()


def listened() -> bool:
    """Whether any plugin listens to index changes."""
    return bool(plugin_manager().hook.private_pypi_index_changed.get_hookimpls())


def announce(change: IndexChange) -> None:
    """Tell the plugins about ``change`` (if it changed anything and any plugin listens)."""
    if change and listened():
        _dispatcher.announce(change)


def _forget_after_fork() -> None:
    # A forked worker has no delivery thread, and its copy of the backlog's lock may be held.
    global _dispatcher
    _dispatcher = _Dispatcher()


os.register_at_fork(after_in_child=_forget_after_fork)
