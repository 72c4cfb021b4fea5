"""Credentials: HTTP basic auth, the per-process auth cache, signed session cookies, secrets.

A credential is a package repository name and a secret. What the secret may do is decided by
the repository's backend and cached for ``auth_read_expires`` / ``auth_write_expires``.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

from private_pypi_core.backend import Access
from private_pypi_core.files import create_exclusive

SESSION_COOKIE = "private_pypi_session"


@dataclass(frozen=True)
class Credential:
    repository: str
    secret: str = field(repr=False)


def generate_secret() -> str:
    # Hex: safe in a URL, a shell and a command line (a leading "-" would read as a flag).
    return secrets.token_hex(32)


@functools.lru_cache(maxsize=1024)  # clients resend the same header with every request
def parse_basic_auth(header: str | None) -> Credential | None:
    """The credential of an ``Authorization: Basic ...`` header, or ``None``."""
    if not header:
        return None
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    repository, sep, secret = decoded.partition(":")
    if not sep or not repository:
        return None
    return Credential(repository=repository, secret=secret)


class AuthCache:
    """Recent answers of backends' ``authenticate``, so a request rarely asks the store.

    Keys hold a hash of the secret, never the secret itself.
    """

    def __init__(self, read_expires: int, write_expires: int) -> None:
        self.expires = {Access.READ: read_expires, Access.WRITE: write_expires}
        self._answers: dict[tuple[str, bytes], tuple[Access, float]] = {}

    def get(self, credential: Credential) -> Access | None:
        answer = self._answers.get(self._key(credential))
        if answer is None or answer[1] < time.monotonic():
            return None
        return answer[0]

    def put(self, credential: Credential, access: Access) -> None:
        if access is Access.NONE:
            return  # a wrong secret is asked again next time: the secret may have been added
        self._answers[self._key(credential)] = (access, time.monotonic() + self.expires[access])

    def clear(self) -> None:
        self._answers.clear()

    @staticmethod
    def _key(credential: Credential) -> tuple[str, bytes]:
        return credential.repository, hashlib.sha256(credential.secret.encode()).digest()


class FailureThrottle:
    """Slows a client that keeps sending wrong secrets: after ``free`` failures within
    ``window`` seconds, each further failure is answered only after a delay that doubles up
    to ``max_delay``. Counted per worker process and client address; a success clears it."""

    def __init__(
        self,
        free: int = 5,
        window: float = 60.0,
        max_delay: float = 2.0,
        max_clients: int = 10_000,
    ) -> None:
        self.free, self.window, self.max_delay, self.max_clients = (
            free,
            window,
            max_delay,
            max_clients,
        )
        self._failures: dict[str, tuple[int, float]] = {}

    def failed(self, client: str) -> float:
        """Record a failure; the seconds to wait before answering it."""
        now = time.monotonic()
        count, since = self._failures.get(client, (0, now))
        if now - since > self.window:
            count, since = 0, now
        if len(self._failures) >= self.max_clients and client not in self._failures:
            self._failures.pop(next(iter(self._failures)))  # bounded memory: forget the oldest
        self._failures[client] = (count + 1, since)
        excess = count + 1 - self.free
        return 0.0 if excess <= 0 else min(0.1 * 2 ** (excess - 1), self.max_delay)

    def succeeded(self, client: str) -> None:
        self._failures.pop(client, None)


class SessionSigner:
    """Signs and checks the browser session cookie, which grants read access to one repository.

    The key is created once under ROOT (mode 0600) so every worker process accepts the
    cookies of the others.
    """

    def __init__(self, key_path: Path, max_age: int) -> None:
        create_exclusive(key_path, secrets.token_bytes(32))
        self._key = key_path.read_bytes()
        self.max_age = max_age

    def sign(self, repository: str) -> str:
        payload = json.dumps({"r": repository, "e": int(time.time()) + self.max_age}).encode()
        body = base64.urlsafe_b64encode(payload).decode().rstrip("=")
        return f"{body}.{self._signature(body)}"

    def repository(self, cookie: str | None) -> str | None:
        """The repository a valid, unexpired cookie names, else ``None``."""
        if not cookie or "." not in cookie:
            return None
        body, signature = cookie.rsplit(".", 1)
        if not hmac.compare_digest(signature.encode(), self._signature(body).encode()):
            return None
        try:
            payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        except (binascii.Error, ValueError):
            return None
        if not isinstance(payload, dict) or payload.get("e", 0) < time.time():
            return None
        repository = payload.get("r")
        return repository if isinstance(repository, str) else None

    def _signature(self, body: str) -> str:
        digest = hmac.new(self._key, body.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")
