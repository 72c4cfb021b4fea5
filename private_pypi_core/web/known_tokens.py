"""API tokens that opened a repository lately, kept for ``Runtime.authorize_at_once``.

The auth cache (``auth.AuthCache``) keeps no token: a token's grant is not cacheable, so that
revoking it takes effect at once. Yet the answer to a token rests on the repository's index,
which holds its record: kept with the very index it was read from, and used only while
``repository.index`` is still that index (any change to the index file, a revocation
included, makes a new one) and the token has not expired, it is the answer ``resolve`` would
give again.

Only while every auth provider of the configuration is the core's own (``secrets`` answers
only its repository's name, ``tokens`` only its index's tokens): a plugin's provider asked
before ``tokens`` could change its answer with no change to the index. Another repository's
index cannot hold the same token: its secret is 256 random bits.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from private_pypi_core.auth_provider import Credential, Grant
from private_pypi_core.index import PackageIndex
from private_pypi_core.repository import Repository
from private_pypi_core.secrets_provider import SecretsProvider
from private_pypi_core.tokens import TOKEN_USERNAME, TokensProvider

TOKENS_KEPT = 1024
CORE_PROVIDERS = (SecretsProvider, TokensProvider)


@dataclass(frozen=True)
class _Known:
    repository: Repository
    index: PackageIndex  # the index the grant was read from
    grant: Grant


class KnownTokens:
    """Tokens that opened a repository, by the hash of the token (never the token itself), at
    most ``TOKENS_KEPT`` of them (the least recently added go first)."""

    def __init__(self) -> None:
        self._known: OrderedDict[bytes, _Known] = OrderedDict()

    def note(
        self,
        credential: Credential,
        repository: Repository,
        grant: Grant,
        repositories: Mapping[str, Repository],
    ) -> None:
        """Keep what ``resolve`` answered ``credential`` among ``repositories``, when that is a
        token's grant that the repository's index alone decides."""
        if credential.username != TOKEN_USERNAME or grant.cacheable or not grant.access:
            return
        if not all(
            type(provider) in CORE_PROVIDERS
            for each in repositories.values()
            for provider in each.auth_providers
        ):
            return
        # The index first: should it change before the token is read again below, the entry
        # is kept with the older index, and is never used.
        index = repository.index
        tokens = next((p for p in repository.auth_providers if type(p) is TokensProvider), None)
        if tokens is None or tokens.authenticate(credential) != grant:
            return  # the index changed since ``resolve`` read it
        key = _key(credential)
        self._known.pop(key, None)
        self._known[key] = _Known(repository, index, grant)
        if len(self._known) > TOKENS_KEPT:
            self._known.popitem(last=False)

    def find(
        self, credential: Credential, repositories: Mapping[str, Repository]
    ) -> tuple[Repository, Grant] | None:
        """The repository and grant kept for ``credential``, while they still hold."""
        if credential.username != TOKEN_USERNAME:
            return None
        known = self._known.get(_key(credential))
        if known is None:
            return None
        repository, grant = known.repository, known.grant
        if (
            repositories.get(repository.name) is not repository
            or repository.index is not known.index
            or (grant.expires is not None and grant.expires <= datetime.now(UTC))
        ):
            return None
        return repository, grant

    def clear(self) -> None:
        self._known.clear()


def _key(credential: Credential) -> bytes:
    return hashlib.sha256(credential.secret.encode()).digest()
