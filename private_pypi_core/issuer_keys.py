"""The signing keys of the issuers that trusted publishing (``oidc``) trusts, fetched from
their discovery documents and JWKS over HTTPS, kept a while, and fetched again for a key id
they lack."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from private_pypi_core.oidc import ALGORITHMS, TokenRefused, is_https_url

log = logging.getLogger(__name__)

KEY_TYPES = frozenset({"RSA", "EC"})
MAX_ISSUER_DOCUMENT_BYTES = 64 << 10  # a discovery document or a JWKS: a few KB
KEYS_FRESH_SECONDS = 300.0
REFETCH_COOLDOWN_SECONDS = 5.0  # an unknown key id fetches the keys again, at most this often
FETCH_TIMEOUT = (5.0, 10.0)  # seconds to connect, and between bytes


class IssuerUnavailable(TokenRefused):
    """The issuer's keys cannot be fetched now; trying again later may help."""

    http_status = 503
    retry_after = 30

    def __init__(self, issuer: str) -> None:
        super().__init__(
            "issuer-unavailable",
            f"the keys of issuer {issuer} cannot be fetched right now; try again later",
        )


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
        if not isinstance(jwks_uri, str) or not is_https_url(jwks_uri):
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
