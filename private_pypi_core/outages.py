"""This worker's record of stores out of reach: one log line when a repository's store starts
failing, with its cause, and one when it answers again, however many syncs and requests fail in
between (each worker polls its stores every second, and a busy server fails many requests a
second: one line each would bury the cause).

The record is kept per ``Repository`` object, so each worker, and each configuration a worker
loads, keeps its own; it never outlives the object.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Protocol

from private_pypi_core.errors import UserError
from private_pypi_core.guarded_backend import BackendFailure

log = logging.getLogger(__name__)


class Named(Protocol):
    """What the record needs of a repository."""

    @property
    def name(self) -> str: ...


@dataclass
class _Outage:
    started: float  # time.monotonic()
    failures: int = 1


_lock = threading.Lock()  # failures are reported from the request threads and the sync loop
_outages: weakref.WeakKeyDictionary[Named, _Outage] = weakref.WeakKeyDictionary()


def store_failed(repository: Named, error: BaseException) -> None:
    """Note a failure of the store of ``repository``; logs it when it starts an outage."""
    with _lock:
        outage = _outages.get(repository)
        if outage is not None:
            outage.failures += 1
            return
        _outages[repository] = _Outage(started=time.monotonic())
    cause = " ".join(str(error).split()) or type(error).__name__
    # A store failure is explained by its message; anything else is a bug: show where it is.
    explained = isinstance(error, (OSError, UserError)) and not isinstance(error, BackendFailure)
    traceback = None if explained else error
    log.error("repository %s: store unavailable: %s", repository.name, cause, exc_info=traceback)


def store_answered(repository: Named) -> None:
    """Note that the store of ``repository`` answered; logs the end of an outage."""
    with _lock:
        outage = _outages.pop(repository, None)
    if outage is not None:
        log.warning(
            "repository %s: store reachable again after %.0f s (%d store calls failed)",
            repository.name,
            time.monotonic() - outage.started,
            outage.failures,
        )


def is_out(repository: Named) -> bool:
    """Whether this worker knows the store of ``repository`` to be out of reach."""
    with _lock:
        return repository in _outages


def any_known() -> bool:
    """Whether this worker knows the store of any repository to be out of reach."""
    with _lock:
        return bool(_outages)
