"""Credentials: HTTP basic auth, the per-process auth cache, secrets.

A credential is a package repository name and a secret. What the secret may do is decided by
the repository's backend and cached for ``auth_read_expires`` / ``auth_write_expires``.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import functools
import hashlib
import json
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from private_pypi_core.backend import Access, BackendConfig

# Far above any real credential (a name and a token fit in a few hundred bytes); a longer
# header is no credential, and is never parsed nor cached.
MAX_AUTHORIZATION_CHARS = 4096
PARSED_HEADERS_KEPT = 1024  # with the header and its credential: at most 8 MiB
ANSWERS_KEPT = 10_000


@dataclass(frozen=True)
class Credential:
    repository: str
    secret: str = field(repr=False)


def generate_secret() -> str:
    # Hex: safe in a URL, a shell and a command line (a leading "-" would read as a flag).
    return secrets.token_hex(32)


def parse_basic_auth(header: str | None) -> Credential | None:
    """The credential of an ``Authorization: Basic ...`` header, or ``None``."""
    if not header or len(header) > MAX_AUTHORIZATION_CHARS:
        return None
    return _parse_basic_auth(header)


@functools.lru_cache(maxsize=PARSED_HEADERS_KEPT)  # clients resend the header with every request
def _parse_basic_auth(header: str) -> Credential | None:
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

    Keys hold a hash of the secret, never the secret itself. Only credentials that opened
    something are kept, at most ``ANSWERS_KEPT`` of them (the least recently added go first).
    """

    def __init__(self, read_expires: int, write_expires: int) -> None:
        self.expires = {Access.READ: read_expires, Access.WRITE: write_expires}
        self._answers: OrderedDict[tuple[str, bytes], tuple[Access, float]] = OrderedDict()

    def get(self, credential: Credential) -> Access | None:
        answer = self._answers.get(self._key(credential))
        if answer is None or answer[1] < time.monotonic():
            return None
        return answer[0]

    def put(self, credential: Credential, access: Access) -> None:
        if access is Access.NONE:
            return  # a wrong secret is asked again next time: the secret may have been added
        self._answers[self._key(credential)] = (access, time.monotonic() + self.expires[access])
        if len(self._answers) > ANSWERS_KEPT:
            self._answers.popitem(last=False)

    def clear(self) -> None:
        self._answers.clear()

    @staticmethod
    def _key(credential: Credential) -> tuple[str, bytes]:
        return credential.repository, hashlib.sha256(credential.secret.encode()).digest()


def secrets_digest(config: BackendConfig, admin_secret: str | None) -> bytes:
    """A digest of every secret in a repository's settings (the fields declared with
    ``repr=False``) and of its admin secret: it changes whenever one of them is rotated.
    Kept in memory only."""
    values = {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if not f.repr}
    document = json.dumps([values, admin_secret], sort_keys=True, default=str)
    return hashlib.sha256(document.encode()).digest()
