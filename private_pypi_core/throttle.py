"""Slowing down whoever guesses secrets, whatever way they spread their guesses.

Each credential check goes through ``GuessThrottle.check``:

- Failures are counted per client address (an IPv6 client by its /64) and per repository the
  credential names, each within a sliding minute. Past a few free failures, the answer to each
  further failure is held back, 0.1 s doubling up to 2 s. A success clears nothing: failures
  only expire.
- A client has at most ``CHECKS_PER_CLIENT`` checks in progress at once, a held-back failure
  included; its further requests wait their turn (at most ``WAITING_PER_CLIENT`` of them, then
  429 unchecked). So parallel guesses are checked no faster than sequential ones, and even a
  right guess among them is answered only in its turn.

Counts live in each worker process; with W workers a client gets W times the rate.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from private_pypi_core import metrics
from private_pypi_core.backend import REPOSITORY_NAME
from private_pypi_core.errors import TooManyRequests

T = TypeVar("T")
log = logging.getLogger(__name__)

FREE_FAILURES_PER_CLIENT = 5
FREE_FAILURES_PER_REPOSITORY = 20
WINDOW_SECONDS = 60.0
FIRST_DELAY_SECONDS = 0.1
MAX_DELAY_SECONDS = 2.0
CHECKS_PER_CLIENT = 2
WAITING_PER_CLIENT = 16
KEYS_KEPT = 10_000  # per counter: bounded memory whatever the number of addresses or names


class FailureCounter:
    """Failures per key within a window, for at most ``KEYS_KEPT`` keys (oldest dropped)."""

    def __init__(self, free: int) -> None:
        self.free = free
        self._failures: OrderedDict[str, tuple[int, float]] = OrderedDict()

    def record(self, key: str) -> int:
        """Count a failure of ``key``; how many it had within the window, this one included."""
        now = time.monotonic()
        count, since = self._failures.pop(key, (0, now))
        if now - since > WINDOW_SECONDS:
            count, since = 0, now
        self._failures[key] = (count + 1, since)
        if len(self._failures) > KEYS_KEPT:
            self._failures.popitem(last=False)
        return count + 1

    def delay(self, count: int) -> float:
        """How long the answer to the ``count``-th failure within the window is held back."""
        excess = count - self.free
        return (
            0.0 if excess <= 0 else min(FIRST_DELAY_SECONDS * 2 ** (excess - 1), MAX_DELAY_SECONDS)
        )


@dataclass
class _Gate:
    """The checks of one client: a few at a time, the others waiting their turn."""

    turns: asyncio.Semaphore
    users: int = 0
    waiting: int = 0


class GuessThrottle:
    def __init__(self) -> None:
        self.clients = FailureCounter(FREE_FAILURES_PER_CLIENT)
        self.repositories = FailureCounter(FREE_FAILURES_PER_REPOSITORY)
        self._gates: dict[str, _Gate] = {}  # only clients with a check under way

    def idle(self, client: str) -> bool:
        """Whether ``client`` has no check under way (nor waiting)."""
        return client_key(client) not in self._gates

    async def check(self, client: str, repository: str, verify: Callable[[], Awaitable[T]]) -> T:
        """``verify()``'s answer (falsy: the credential failed), in the client's turn, held back
        when the client or the repository has failed too often."""
        key = client_key(client)
        gate = self._gates.get(key)
        if gate is None:
            gate = self._gates[key] = _Gate(asyncio.Semaphore(CHECKS_PER_CLIENT))
        elif gate.turns.locked() and gate.waiting >= WAITING_PER_CLIENT:
            metrics.record_auth_failure("too_many_checks")
            raise TooManyRequests(
                "Too many credential checks from this address at once; retry in a moment."
            )
        gate.users += 1
        try:
            gate.waiting += 1
            try:
                await gate.turns.acquire()
            finally:
                gate.waiting -= 1
            try:
                answer = await verify()
                if not answer:
                    metrics.record_auth_failure("wrong_credential")
                    await asyncio.sleep(self._failed(key, repository))
                return answer
            finally:
                gate.turns.release()
        finally:
            gate.users -= 1
            if gate.users == 0:
                del self._gates[key]

    def _failed(self, client: str, repository: str) -> float:
        # Any name is counted, known or not, so a held-back answer tells no name exists; an
        # impossible name is counted as one, so names cannot fill the table.
        name = repository if REPOSITORY_NAME.fullmatch(repository) else "<invalid>"
        client_failures = self.clients.record(client)
        repository_failures = self.repositories.record(name)
        if client_failures == self.clients.free + 1:
            log.warning("client %s: repeated auth failures, answering them late", client)
        if repository_failures == self.repositories.free + 1:
            log.warning("repository %s: repeated auth failures, answering them late", name)
        return max(
            self.clients.delay(client_failures), self.repositories.delay(repository_failures)
        )


@functools.lru_cache(maxsize=4096)  # one parse per address, not per request
def client_key(address: str) -> str:
    """What counts as one client: an IPv4 address, or an IPv6 address's /64 network (one
    host commonly owns a whole /64)."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network((parsed, 64), strict=False))
    return str(parsed)
