"""Credentials: reading them from a request, finding the repository they open, the
per-process cache of that answer, secrets.

A credential opens at most one package repository (``auth_provider`` says which, and who
decides what it may do there); positive answers are cached for ``auth_read_expires`` /
``auth_write_expires`` seconds.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import enum
import functools
import hashlib
import json
import secrets
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Protocol, TypeVar

from private_pypi_core.auth_provider import Credential, Grant
from private_pypi_core.backend import Access, BackendConfig

# Far above any real credential (a name and a token fit in a few hundred bytes); a longer
# header is no credential, and is never parsed nor cached.
MAX_AUTHORIZATION_CHARS = 4096
PARSED_HEADERS_KEPT = 1024  # with the header and its credential: at most 8 MiB
ANSWERS_KEPT = 10_000
REFUSED = Grant(access=Access.NONE, identity="")
SESSION_GRANT = Grant(access=Access.READ, identity="a browser session")
ANONYMOUS_GRANT = Grant(access=Access.READ, identity="anonymous")


class Action(enum.Enum):
    """What a request does, and the access it needs; a grant's scopes name the first three."""

    READ = "read"
    UPLOAD = "upload"
    YANK = "yank"
    MANAGE = "manage"

    @property
    def access(self) -> Access:
        return Access.READ if self is Action.READ else Access.WRITE


def refusal_of(grant: Grant, action: Action, repository: str) -> str | None:
    """Why ``grant`` may not take ``action`` in ``repository`` (a message naming what it
    lacks), or ``None`` when it may."""
    if grant.scopes is not None and action.value not in grant.scopes:
        scopes = ", ".join(sorted(grant.scopes))
        return f"{grant.identity} may not {action.value} in {repository!r}: it may {scopes}."
    if grant.access < action.access:
        return (
            f"This credential may only read package repository {repository!r}; "
            f"to {action.value} it needs a write secret."
        )
    return None


class Authenticating(Protocol):
    """What resolving a credential needs of a repository."""

    name: str

    def authenticate(self, credential: Credential) -> Grant | None: ...


R = TypeVar("R", bound=Authenticating)


def generate_secret() -> str:
    # Hex: safe in a URL, a shell and a command line (a leading "-" would read as a flag).
    return secrets.token_hex(32)


def parse_authorization(header: str | None) -> Credential | None:
    """The credential of an ``Authorization`` header (HTTP basic auth, or a bearer token), or
    ``None``."""
    if not header or len(header) > MAX_AUTHORIZATION_CHARS:
        return None
    return _parse_authorization(header)


@functools.lru_cache(maxsize=PARSED_HEADERS_KEPT)  # clients resend the header with every request
def _parse_authorization(header: str) -> Credential | None:
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return Credential(username=None, secret=value.strip())
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    username, sep, secret = decoded.partition(":")
    if not sep or not username:
        return None
    return Credential(username=username, secret=secret)


def resolve(repositories: Mapping[str, R], credential: Credential) -> tuple[R | None, Grant]:
    """The repository ``credential`` opens and what it may do there (see ``auth_provider``
    for which repositories are asked); ``(None, REFUSED)`` when none opens."""
    username = credential.username
    if username is not None and username in repositories:
        candidates = [(repositories[username], credential)]
    elif username is not None and username.rpartition("@")[2] in repositories:
        user, _, name = username.rpartition("@")
        candidates = [(repositories[name], Credential(username=user, secret=credential.secret))]
    else:
        candidates = [(repository, credential) for repository in repositories.values()]
    for repository, asked in candidates:
        grant = repository.authenticate(asked)
        if grant is not None and grant.access:
            return repository, grant
    return None, REFUSED


class AuthCache:
    """Recent answers of ``resolve``, so a request rarely asks the auth providers.

    Keys hold a hash of the secret, never the secret itself. Only credentials that opened
    something are kept, at most ``ANSWERS_KEPT`` of them (the least recently added go first),
    never past the grant's own expiry, and never a grant that must be asked for every time.
    """

    def __init__(self, read_expires: int, write_expires: int) -> None:
        self.expires = {Access.READ: read_expires, Access.WRITE: write_expires}
        self._answers: OrderedDict[tuple[str | None, bytes], tuple[str, Grant, float]] = (
            OrderedDict()
        )

    def get(self, credential: Credential) -> tuple[str, Grant] | None:
        """The repository name and grant cached for ``credential``."""
        answer = self._answers.get(self._key(credential))
        if answer is None or answer[2] < time.monotonic():
            return None
        return answer[0], answer[1]

    def put(self, credential: Credential, repository: str, grant: Grant) -> None:
        if not grant.access or not grant.cacheable:
            return  # a wrong secret is asked again next time: the secret may have been added
        lifetime = float(self.expires[grant.access])
        if grant.expires is not None:
            lifetime = min(lifetime, (grant.expires - datetime.now(UTC)).total_seconds())
        self._answers[self._key(credential)] = (repository, grant, time.monotonic() + lifetime)
        if len(self._answers) > ANSWERS_KEPT:
            self._answers.popitem(last=False)

    def clear(self) -> None:
        self._answers.clear()

    @staticmethod
    def _key(credential: Credential) -> tuple[str | None, bytes]:
        return credential.username, hashlib.sha256(credential.secret.encode()).digest()


def secrets_digest(
    config: BackendConfig, admin_secret: str | None, provider_settings: Iterable[object] = ()
) -> bytes:
    """A digest of every secret in a repository's settings and its auth providers' (the fields
    declared with ``repr=False``) and of its admin secret: it changes whenever one of them is
    rotated. Kept in memory only."""
    values = [
        {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings) if not f.repr}  # type: ignore[arg-type]
        for settings in (config, *provider_settings)
    ]
    document = json.dumps([values, admin_secret], sort_keys=True, default=str)
    return hashlib.sha256(document.encode()).digest()
