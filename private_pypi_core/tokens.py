"""Scoped, expiring API tokens, and ``tokens``, the core's auth provider that honours them.

A token reads ``pypp_<id>_<secret>``: ``id`` names it in listings and the audit log, ``secret``
(256 random bits) is shown once and kept only as its sha256, in the repository's index (so
every worker and every server on the store honours it, and a revocation reaches them all
within one sync interval). It is sent as HTTP basic auth's password with the username
``__token__``, as pypi.org's tokens are. It may ``read``, ``upload`` and/or ``yank``, in one
repository, optionally only projects matching globs, until it expires. Trusted publishing
(``oidc``) mints such tokens too: upload tokens for minutes, each remembering its ID token.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from private_pypi_core.auth_provider import AuthProvider, Credential, Grant, ProviderSettings
from private_pypi_core.backend import Access, Backend
from private_pypi_core.errors import BadRequest
from private_pypi_core.hookspecs import hookimpl

TOKEN_USERNAME = "__token__"
PREFIX = "pypp_"
SCOPES = ("read", "upload", "yank")
DEFAULT_LIFETIME = timedelta(days=90)
TOKEN = re.compile(rf"{PREFIX}([0-9a-f]{{12}})_([A-Za-z0-9_-]{{43}})")
DURATION = re.compile(r"(\d{1,6})([smhdw])")
DURATION_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
PROJECT_GLOB = re.compile(r"[a-z0-9*?._-]{1,100}")
MAX_NOTE_CHARS = 200
MAX_PROJECT_GLOBS = 50


@dataclass(frozen=True)
class TokenRecord:
    """What the index keeps of a token: never the token itself."""

    id: str
    secret_sha256: str
    scopes: tuple[str, ...]
    projects: tuple[str, ...]  # fnmatch globs of normalised names; empty: every project
    created: datetime
    expires: datetime | None
    note: str
    created_by: str  # the identity that made it
    # A token minted by trusted publishing (``oidc``): the sha256 of the ID token it was minted
    # for, and until when that ID token could still be presented. The record is kept until
    # then even when the token has expired, so that an ID token is exchanged once only.
    id_token_sha256: str | None = None
    id_token_expires: datetime | None = None
    # The PEP 740 publisher object of a minted token's trusted publisher, for provenance.
    publisher: Mapping[str, Any] | None = field(default=None, hash=False)

    def describe(self) -> str:
        return f"token {self.id}" + (f" ({self.note})" if self.note else "")

    def to_json(self) -> dict[str, Any]:
        return {
            "secret_sha256": self.secret_sha256,
            "scopes": list(self.scopes),
            "projects": list(self.projects),
            "created": self.created.isoformat(),
            "expires": self.expires.isoformat() if self.expires else None,
            "note": self.note,
            "created_by": self.created_by,
            **(
                {
                    "id_token_sha256": self.id_token_sha256,
                    "id_token_expires": self.id_token_expires.isoformat(),
                }
                if self.id_token_sha256 is not None and self.id_token_expires is not None
                else {}
            ),
            **({"publisher": dict(self.publisher)} if self.publisher else {}),
        }

    @classmethod
    def from_json(cls, token_id: str, record: dict[str, Any]) -> TokenRecord:
        expires = record.get("expires")
        id_token_expires = record.get("id_token_expires")
        return cls(
            id=token_id,
            secret_sha256=record["secret_sha256"],
            scopes=tuple(record["scopes"]),
            projects=tuple(record.get("projects", ())),
            created=datetime.fromisoformat(record["created"]),
            expires=datetime.fromisoformat(expires) if expires else None,
            note=record.get("note", ""),
            created_by=record.get("created_by", ""),
            id_token_sha256=record.get("id_token_sha256"),
            id_token_expires=(
                datetime.fromisoformat(id_token_expires) if id_token_expires else None
            ),
            publisher=record.get("publisher"),
        )

    def spent(self, now: datetime) -> bool:
        """Whether this is a minted token that has expired, as has its ID token: it opens
        nothing, and nothing more is refused because of it, so its record may go."""
        return (
            self.id_token_expires is not None
            and self.id_token_expires <= now
            and self.expires is not None
            and self.expires <= now
        )

    def public(self) -> dict[str, Any]:
        """What a listing shows: everything but the secret's hash."""
        shown = self.to_json()
        del shown["secret_sha256"]
        return {"id": self.id, **shown}


def new_token(
    *,
    scopes: Iterable[str],
    projects: Iterable[str],
    lifetime: timedelta | None,
    note: str,
    created_by: str,
) -> tuple[str, TokenRecord]:
    """A new token and its record, checked; ``BadRequest`` says what is wrong."""
    chosen = tuple(sorted(set(scopes)))
    unknown = [scope for scope in chosen if scope not in SCOPES]
    if not chosen or unknown:
        raise BadRequest(f"A token's scopes are one or more of {', '.join(SCOPES)}.")
    globs = tuple(projects)
    if len(globs) > MAX_PROJECT_GLOBS or not all(map(PROJECT_GLOB.fullmatch, globs)):
        raise BadRequest("Project globs are normalised project names with * and ?, e.g. 'acme-*'.")
    if len(note) > MAX_NOTE_CHARS or not note.isprintable():
        raise BadRequest(f"A token's note is at most {MAX_NOTE_CHARS} printable characters.")
    token_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    record = TokenRecord(
        id=token_id,
        secret_sha256=hashlib.sha256(secret.encode()).hexdigest(),
        scopes=chosen,
        projects=globs,
        created=now,
        expires=now + lifetime if lifetime is not None else None,
        note=note,
        created_by=created_by,
    )
    return f"{PREFIX}{token_id}_{secret}", record


def parse_lifetime(text: str) -> timedelta | None:
    """``90d``, ``12h``, ``30m``, ``2w``, ``45s`` or ``never`` (``None``); ``BadRequest``
    otherwise."""
    if text.strip().lower() == "never":
        return None
    match = DURATION.fullmatch(text.strip())
    if match is None or int(match.group(1)) == 0:
        raise BadRequest(f"expires={text!r}: give a duration such as 1h, 7d or 2w, or 'never'.")
    return timedelta(**{DURATION_UNITS[match.group(2)]: int(match.group(1))})


def project_allowed(projects: tuple[str, ...], project: str) -> bool:
    return not projects or any(fnmatch.fnmatchcase(project, glob) for glob in projects)


def find_token(tokens: Mapping[str, TokenRecord], token: str) -> TokenRecord | None:
    """The record of ``token`` among ``tokens`` if its secret matches, expired or not."""
    match = TOKEN.fullmatch(token)
    record = tokens.get(match.group(1)) if match else None
    if match is None or record is None or not _secret_matches(record, match.group(2)):
        return None
    return record


def _secret_matches(record: TokenRecord, secret: str) -> bool:
    digest = hashlib.sha256(secret.encode()).hexdigest()
    return hmac.compare_digest(digest, record.secret_sha256)


class TokensProvider(AuthProvider):
    """``tokens``: the repository's API tokens, from its index as this server last synced it."""

    name = "tokens"

    def __init__(
        self,
        repository: str,
        settings: ProviderSettings,
        backend: Backend,
        root: Path,
        *,
        tokens: Callable[[], Mapping[str, TokenRecord]],
    ) -> None:
        super().__init__(repository, settings, backend, root)
        self.tokens = tokens

    def authenticate(self, credential: Credential) -> Access | Grant | None:
        if credential.username != TOKEN_USERNAME:
            return None
        match = TOKEN.fullmatch(credential.secret)
        record = self.tokens().get(match.group(1)) if match else None
        if match is None or record is None:
            return None  # perhaps another repository's
        if not _secret_matches(record, match.group(2)):
            return Access.NONE
        if record.expires is not None and record.expires <= datetime.now(UTC):
            return Access.NONE
        writes = {"upload", "yank"} & set(record.scopes)
        return Grant(
            access=Access.WRITE if writes else Access.READ,
            identity=record.describe(),
            scopes=frozenset(record.scopes),
            projects=record.projects,
            expires=record.expires,
            cacheable=False,  # a revocation must take effect at once
            publisher=record.publisher,
        )


@hookimpl
def private_pypi_auth_providers() -> list[type[AuthProvider]]:
    return [TokensProvider]
