"""Trusted publishing (OIDC), pypi.org's protocol: the CI workflows a repository trusts, and
the exchange of their ID tokens for short-lived upload tokens.

A repository names the workflows that may upload to it without a secret::

    [[team.trusted_publishers]]
    issuer = "https://token.actions.githubusercontent.com"
    claims = { repository = "acme/widgets", environment = "release" }
    projects = ["acme-*"]

A CI job asks the server for its audience (``GET /_/oidc/audience``), asks its CI for an ID
token (a JWT) for that audience, and posts it to ``/_/oidc/mint-token``. The server takes it
only from an issuer some repository trusts (decided on the unverified token, before the server
fetches anything: a token cannot send the server elsewhere), signed by a key of that issuer's
JWKS (found through its discovery document, cached, fetched again for a key id it does not
know: the issuer rotated its keys), for this server's audience, within its ``exp``, ``nbf``
and ``iat``, and once. The first publisher, in config order, whose issuer equals ``iss`` and
whose claims all equal the token's names the repository; the answer is a token of that
repository (``tokens``) that may upload the publisher's projects for 15 minutes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, Protocol, TypeVar
from urllib.parse import urlsplit

import jwt
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from private_pypi_core.backend import BackendConfig
from private_pypi_core.errors import ConfigError, UserError
from private_pypi_core.tokens import (
    MAX_NOTE_CHARS,
    MAX_PROJECT_GLOBS,
    PROJECT_GLOB,
    TokenRecord,
    new_token,
)

log = logging.getLogger(__name__)

GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
GITLAB_ISSUER = "https://gitlab.com"
# The claim a publisher of a well-known CI must name: without it, any of its users would match.
IDENTIFYING_CLAIMS = {GITHUB_ISSUER: "repository", GITLAB_ISSUER: "project_path"}
# Claims the exchange itself checks: a publisher names the claims that identify a workflow.
PROTOCOL_CLAIMS = frozenset({"iss", "aud", "exp", "nbf", "iat", "jti"})
PUBLISHER_KEYS = ("issuer", "claims", "projects")
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
KEY_TYPES = frozenset({"RSA", "EC"})
MINTED_LIFETIME = timedelta(minutes=15)
LEEWAY_SECONDS = 30  # clock skew allowed on exp, nbf and iat
MAX_ID_TOKEN_CHARS = 8192  # GitHub's are about 1.2 KB
MAX_ISSUER_DOCUMENT_BYTES = 64 << 10  # a discovery document or a JWKS: a few KB
KEYS_FRESH_SECONDS = 300.0
REFETCH_COOLDOWN_SECONDS = 5.0  # an unknown key id fetches the keys again, at most this often
FETCH_TIMEOUT = (5.0, 10.0)  # seconds to connect, and between bytes


class TokenRefused(UserError):
    """An ID token the exchange refuses, answered as pypi.org does: ``code`` is one of its
    error codes (``invalid-payload``, ``invalid-token``, ``invalid-publisher``,
    ``invalid-reuse-token``), ``str(error)`` the description."""

    http_status = 422

    def __init__(self, code: str, description: str) -> None:
        super().__init__(description)
        self.code = code


class IssuerUnavailable(TokenRefused):
    """The issuer's keys cannot be fetched now; trying again later may help."""

    http_status = 503
    retry_after = 30

    def __init__(self, issuer: str) -> None:
        super().__init__(
            "issuer-unavailable",
            f"the keys of issuer {issuer} cannot be fetched right now; try again later",
        )


MALFORMED = ("invalid-payload", "malformed JWT")
UNKNOWN_ISSUER = ("invalid-payload", "unknown trusted publishing issuer")
REUSED = ("invalid-reuse-token", "invalid token: already used")


@dataclass(frozen=True)
class TrustedPublisher:
    """A CI workflow a repository trusts: tokens of ``issuer`` whose ``claims`` all equal
    these may upload ``projects`` (globs of normalised names)."""

    issuer: str
    claims: tuple[tuple[str, str], ...]
    projects: tuple[str, ...]

    def matches(self, claims: Mapping[str, object]) -> bool:
        return claims.get("iss") == self.issuer and all(
            claims.get(name) == value for name, value in self.claims
        )

    def describe(self) -> str:
        """Who it is, for the audit trail: the issuer and the claims it was matched on."""
        shown = ", ".join(f"{name}={value}" for name, value in self.claims)
        return f"trusted publisher {self.issuer} ({shown})"


def trusted_publishers(config: BackendConfig) -> tuple[TrustedPublisher, ...]:
    """A repository's trusted publishers, checked; ``ConfigError`` says what is wrong."""
    return tuple(
        _publisher(table, where=f"trusted_publishers[{number}]")
        for number, table in enumerate(config.trusted_publishers)
    )


def _publisher(table: Mapping[str, object], *, where: str) -> TrustedPublisher:
    unknown = sorted(set(table) - set(PUBLISHER_KEYS))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {unknown[0]!r} (known keys: {', '.join(PUBLISHER_KEYS)})"
        )
    issuer = table.get("issuer")
    if not isinstance(issuer, str) or not _is_https_url(issuer):
        raise ConfigError(
            f"{where}: 'issuer' must be the issuer's https URL, as its tokens' 'iss' claim "
            f"says it, e.g. {GITHUB_ISSUER!r}"
        )
    claims = table.get("claims")
    if (
        not isinstance(claims, dict)
        or not claims
        or not all(isinstance(value, str) and value for value in claims.values())
    ):
        raise ConfigError(
            f"{where}: 'claims' must be a table of the token claims that must match, each a "
            'non-empty string, e.g. { repository = "acme/widgets" }'
        )
    protocol = sorted(PROTOCOL_CLAIMS & set(claims))
    if protocol:
        raise ConfigError(
            f"{where}: claim {protocol[0]!r} is checked by the server itself; name the claims "
            "that identify the workflow"
        )
    identifying = IDENTIFYING_CLAIMS.get(issuer)
    if identifying is not None and identifying not in claims:
        raise ConfigError(
            f"{where}: a publisher of {issuer} must name the claim {identifying!r}: without "
            "it, any of its users could publish"
        )
    projects = table.get("projects")
    if (
        not isinstance(projects, list)
        or not 0 < len(projects) <= MAX_PROJECT_GLOBS
        or not all(isinstance(glob, str) and PROJECT_GLOB.fullmatch(glob) for glob in projects)
    ):
        raise ConfigError(
            f"{where}: 'projects' must list the projects it may publish, normalised names "
            'with * and ?, e.g. ["acme-*"] (or ["*"] for all)'
        )
    return TrustedPublisher(issuer, tuple(claims.items()), tuple(projects))


def _is_https_url(text: str) -> bool:
    parts = urlsplit(text)
    return (
        parts.scheme == "https"
        and bool(parts.hostname)
        and not parts.query
        and not (parts.fragment or parts.username or parts.password)
    )


class Publishing(Protocol):
    """What the exchange needs of a repository."""

    name: str
    config: BackendConfig


R = TypeVar("R", bound=Publishing)


@dataclass(frozen=True)
class Exchange(Generic[R]):
    """A checked ID token, the repository it publishes to and the publisher it proved to be."""

    repository: R
    publisher: TrustedPublisher
    claims: Mapping[str, Any]
    id_token_sha256: str  # of the issuer and jti (of the whole token when it has no jti)
    id_token_expires: datetime  # until when the token could be presented


def minted_token(exchange: Exchange[Any]) -> tuple[str, TokenRecord]:
    """A new upload token for the exchange's publisher and its record."""
    publisher = exchange.publisher
    note = "trusted publishing: " + ", ".join(f"{k}={v}" for k, v in publisher.claims)
    token, record = new_token(
        scopes=("upload",),
        projects=publisher.projects,
        lifetime=MINTED_LIFETIME,
        note=note if len(note) <= MAX_NOTE_CHARS else note[: MAX_NOTE_CHARS - 3] + "...",
        created_by=publisher.describe(),
    )
    return token, dataclasses.replace(
        record,
        id_token_sha256=exchange.id_token_sha256,
        id_token_expires=exchange.id_token_expires,
        publisher=provenance_publisher(exchange.claims),
    )


def provenance_publisher(claims: Mapping[str, Any]) -> dict[str, Any]:
    """The PEP 740 publisher object that the verified ID token's ``claims`` prove: for GitHub
    and GitLab what Fulcio writes into the certificates of their runs (the top-level workflow),
    so that attestations uploaded with the token are checked against it."""
    issuer = str(claims.get("iss", ""))
    environment = claims.get("environment") or None
    if issuer == GITHUB_ISSUER:
        return {
            "kind": "GitHub",
            "repository": claims.get("repository"),
            "workflow": _workflow_file(claims.get("workflow_ref")),
            "environment": environment,
            "claims": {key: claims[key] for key in ("ref", "sha") if key in claims},
        }
    if issuer == GITLAB_ISSUER:
        return {
            "kind": "GitLab",
            "repository": claims.get("project_path"),
            "workflow_filepath": _workflow_file(claims.get("ci_config_ref_uri"), keep_path=True),
            "environment": environment,
            "claims": {key: claims[key] for key in ("ref_path", "sha") if key in claims},
        }
    return {"kind": issuer, "claims": {key: claims[key] for key in ("sub",) if key in claims}}


def _workflow_file(reference: object, *, keep_path: bool = False) -> str | None:
    """``release.yml`` of ``octo/app/.github/workflows/release.yml@refs/tags/v1`` (with
    ``keep_path``, the path within the repository: ``.gitlab-ci.yml`` of
    ``gitlab.com/group/app//.gitlab-ci.yml@refs/heads/main``)."""
    if not isinstance(reference, str) or "@" not in reference:
        return None
    path = reference.rsplit("@", 1)[0]
    if keep_path:
        return path.split("//", 1)[1] if "//" in path else path
    return path.rsplit("/", 1)[-1]


class TrustedPublishing:
    """Checks ID tokens for one server's audience (one instance per worker process, shared by
    its threads)."""

    def __init__(self, audience: str, keys: IssuerKeys | None = None) -> None:
        self.audience = audience
        self.keys = keys or IssuerKeys()

    def exchange(self, id_token: str, repositories: Iterable[R]) -> Exchange[R]:
        """What ``id_token`` proves, among the publishers of ``repositories``; ``TokenRefused``
        says why it proves nothing. May fetch the issuer's keys: call it from a thread."""
        if len(id_token) > MAX_ID_TOKEN_CHARS:
            raise TokenRefused(*MALFORMED)
        try:
            header = jwt.get_unverified_header(id_token)
            unverified = jwt.decode(id_token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise TokenRefused(*MALFORMED) from None
        issuer = unverified.get("iss")
        trusted = [
            (repository, publisher)
            for repository in repositories
            for publisher in trusted_publishers(repository.config)
            if publisher.issuer == issuer
        ]
        if not isinstance(issuer, str) or not trusted:
            raise TokenRefused(*UNKNOWN_ISSUER)
        kid = header.get("kid")
        key = self.keys.key(issuer, kid if isinstance(kid, str) else None)
        if key is None:
            raise TokenRefused(
                "invalid-token", "malformed or invalid token: its key is not in the issuer's JWKS"
            )
        try:
            claims = jwt.decode(
                id_token,
                key,
                algorithms=list(ALGORITHMS),
                audience=self.audience,
                issuer=issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["iss", "aud", "exp", "iat"]},
            )
        except jwt.PyJWTError as error:
            raise TokenRefused("invalid-token", f"malformed or invalid token: {error}") from None
        for repository, publisher in trusted:
            if publisher.matches(claims):
                return Exchange(
                    repository,
                    publisher,
                    claims,
                    _id_token_sha256(issuer, claims.get("jti"), id_token),
                    datetime.fromtimestamp(int(claims["exp"]) + LEEWAY_SECONDS, UTC),
                )
        raise TokenRefused(
            "invalid-publisher",
            "valid token, but no corresponding publisher (no trusted publisher of "
            f"{issuer} matches its claims)",
        )


def _id_token_sha256(issuer: str, jti: object, id_token: str) -> str:
    identity = f"{issuer}\n{jti}" if isinstance(jti, str) and jti else id_token
    return hashlib.sha256(identity.encode()).hexdigest()


@dataclass(frozen=True)
class _KnownKeys:
    keys: Mapping[str, jwt.PyJWK]  # by key id; "" for a key that has none
    fetched: float  # time.monotonic() of the last attempt
    failed: bool = False


class IssuerKeys:
    """The signing keys of the trusted issuers, fetched over HTTPS (with ``requests``, so
    ``REQUESTS_CA_BUNDLE`` or ``SSL_CERT_FILE`` name the CAs trusted) and kept
    ``KEYS_FRESH_SECONDS``; fetched again sooner for a key id they lack, at most once per
    ``REFETCH_COOLDOWN_SECONDS`` (so made-up key ids cannot make the server hammer an issuer)."""

    def __init__(self, session: requests.Session | None = None) -> None:
        self.session = session or issuer_session()
        self._known: dict[str, _KnownKeys] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()

    def key(self, issuer: str, kid: str | None) -> jwt.PyJWK | None:
        """The key ``kid`` of ``issuer`` (without a kid: its only key), ``None`` if it has none
        such; ``IssuerUnavailable`` when its keys cannot be had."""
        with self._lock(issuer):
            known = self._known.get(issuer)
            if known is None or self._due(known, kid):
                known = self._known[issuer] = self._refreshed(issuer, known)
            if known.failed:
                raise IssuerUnavailable(issuer)
            if kid is None:
                return next(iter(known.keys.values())) if len(known.keys) == 1 else None
            return known.keys.get(kid)

    @staticmethod
    def _due(known: _KnownKeys, kid: str | None) -> bool:
        age = time.monotonic() - known.fetched
        lacking = known.failed or (kid is not None and kid not in known.keys)
        return age >= KEYS_FRESH_SECONDS or (lacking and age >= REFETCH_COOLDOWN_SECONDS)

    def _refreshed(self, issuer: str, known: _KnownKeys | None) -> _KnownKeys:
        """The issuer's keys fetched now; those ``known`` if that fails (failed if none)."""
        try:
            keys = self._fetch(issuer)
        except (OSError, ValueError) as error:  # requests' errors are OSErrors
            log.warning("trusted publishing: the keys of %s cannot be fetched: %s", issuer, error)
            kept = known.keys if known is not None else {}
            return _KnownKeys(kept, time.monotonic(), failed=not kept)
        return _KnownKeys(keys, time.monotonic())

    def _lock(self, issuer: str) -> threading.Lock:
        with self._locks_lock:
            return self._locks.setdefault(issuer, threading.Lock())

    def _fetch(self, issuer: str) -> dict[str, jwt.PyJWK]:
        discovery = self._get_json(issuer.rstrip("/") + "/.well-known/openid-configuration")
        if discovery.get("issuer") != issuer:
            raise ValueError("its discovery document names another issuer")
        jwks_uri = discovery.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not _is_https_url(jwks_uri):
            raise ValueError("its discovery document has no https jwks_uri")
        keys = _signing_keys(self._get_json(jwks_uri))
        log.info("trusted publishing: fetched %d keys of %s", len(keys), issuer)
        return keys

    def _get_json(self, url: str) -> dict[str, Any]:
        with self.session.get(
            url, timeout=FETCH_TIMEOUT, stream=True, allow_redirects=False
        ) as response:
            if response.status_code != 200:
                raise ValueError(f"{url} answered {response.status_code}")
            body = b""
            for chunk in response.iter_content(16 << 10):
                body += chunk
                if len(body) > MAX_ISSUER_DOCUMENT_BYTES:
                    raise ValueError(f"{url} answered more than {MAX_ISSUER_DOCUMENT_BYTES} bytes")
        document = json.loads(body)
        if not isinstance(document, dict):
            raise ValueError(f"{url} answered no JSON object")
        return document


def _signing_keys(jwks: Mapping[str, Any]) -> dict[str, jwt.PyJWK]:
    """The public signing keys of a JWKS, by key id; keys of other uses or types are left
    out (a symmetric key among them would let anyone who read it sign)."""
    entries = jwks.get("keys")
    if not isinstance(entries, list):
        raise ValueError("the JWKS has no 'keys' list")
    keys = {}
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("kty") not in KEY_TYPES:
            continue
        if entry.get("use", "sig") != "sig" or entry.get("alg", "RS256") not in ALGORITHMS:
            continue
        try:
            key = jwt.PyJWK(entry)
        except jwt.PyJWTError:
            continue
        keys[str(entry.get("kid", ""))] = key
    return keys


def issuer_session() -> requests.Session:
    """A session for fetching issuers' documents: retried briefly, trusting the CAs of
    ``REQUESTS_CA_BUNDLE`` (requests reads it at each request) or else ``SSL_CERT_FILE``."""
    session = requests.Session()
    retry = Retry(total=1, backoff_factor=0.2, status_forcelist=(502, 503, 504))
    session.mount("https://", HTTPAdapter(max_retries=retry))
    session.verify = os.environ.get("SSL_CERT_FILE") or True
    session.headers["User-Agent"] = "private-pypi (trusted publishing)"
    return session
