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
know: the issuer rotated its keys; ``issuer_keys``), for this server's audience, within its
``exp``, ``nbf`` and ``iat``, and once. The first publisher, in config order, whose issuer
equals ``iss`` and whose claims all equal the token's names the repository; the answer is a
token of that repository (``tokens``) that may upload the publisher's projects for 15 minutes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar
from urllib.parse import urlsplit

from private_pypi_core.backend import BackendConfig
from private_pypi_core.errors import ConfigError, UserError
from private_pypi_core.tokens import (
    MAX_NOTE_CHARS,
    MAX_PROJECT_GLOBS,
    PROJECT_GLOB,
    TokenRecord,
    new_token,
)

if TYPE_CHECKING:
    from private_pypi_core.issuer_keys import IssuerKeys

GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
GITLAB_ISSUER = "https://gitlab.com"
# The claim a publisher of a well-known CI must name: without it, any of its users would match.
IDENTIFYING_CLAIMS = {GITHUB_ISSUER: "repository", GITLAB_ISSUER: "project_path"}
# Claims the exchange itself checks: a publisher names the claims that identify a workflow.
PROTOCOL_CLAIMS = frozenset({"iss", "aud", "exp", "nbf", "iat", "jti"})
PUBLISHER_KEYS = ("issuer", "claims", "projects")
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
MINTED_LIFETIME = timedelta(minutes=15)
LEEWAY_SECONDS = 30  # clock skew allowed on exp, nbf and iat
MAX_ID_TOKEN_CHARS = 8192  # GitHub's are about 1.2 KB


class TokenRefused(UserError):
    """An ID token the exchange refuses, answered as pypi.org does: ``code`` is one of its
    error codes (``invalid-payload``, ``invalid-token``, ``invalid-publisher``,
    ``invalid-reuse-token``), ``str(error)`` the description."""

    http_status = 422

    def __init__(self, code: str, description: str) -> None:
        super().__init__(description)
        self.code = code


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
    if not isinstance(issuer, str) or not is_https_url(issuer):
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


def is_https_url(text: str) -> bool:
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
        self._keys = keys
        self._keys_lock = threading.Lock()

    def exchange(self, id_token: str, repositories: Iterable[R]) -> Exchange[R]:
        """What ``id_token`` proves, among the publishers of ``repositories``; ``TokenRefused``
        says why it proves nothing. May fetch the issuer's keys: call it from a thread."""
        # PyJWT brings cryptography (about 10 MB): only a worker that exchanges a token pays.
        import jwt

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
        key = self._issuer_keys().key(issuer, kid if isinstance(kid, str) else None)
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

    def _issuer_keys(self) -> IssuerKeys:
        """The keys, made at the first exchange: they need requests, which an idle worker
        does without."""
        with self._keys_lock:
            if self._keys is None:
                from private_pypi_core.issuer_keys import IssuerKeys

                self._keys = IssuerKeys()
            return self._keys


def _id_token_sha256(issuer: str, jti: object, id_token: str) -> str:
    identity = f"{issuer}\n{jti}" if isinstance(jti, str) and jti else id_token
    return hashlib.sha256(identity.encode()).hexdigest()
