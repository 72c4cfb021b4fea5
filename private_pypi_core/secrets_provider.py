"""The core's auth provider, ``secrets``: a repository's read and write secrets, for any backend.

Its settings are keys of the repository's own table (``read_secret``, ``write_secret``, or
their hex sha256 ``read_secret_sha256`` / ``write_secret_sha256``, so a leaked config opens
nothing). It answers a credential whose username is the repository's name: pip, uv and twine
send the repository's name and secret as HTTP basic auth.
"""

from __future__ import annotations

import hashlib
import hmac

from private_pypi_core.auth_provider import AuthProvider, Credential
from private_pypi_core.backend import Access, BackendConfig
from private_pypi_core.hookspecs import hookimpl


class SecretsProvider(AuthProvider):
    name = "secrets"

    def authenticate(self, credential: Credential) -> Access | None:
        if credential.username != self.repository:
            return None
        config = self.backend.config
        return secret_access(credential.secret, config)


def secret_access(secret: str, config: BackendConfig) -> Access:
    """What ``secret`` opens among the secrets of ``config``. Every comparison runs, so the
    time taken does not tell which secret was close; an empty secret opens nothing."""
    digest = hashlib.sha256(secret.encode()).hexdigest()
    is_write = _equals(secret, config.write_secret) | _equals(
        digest, config.write_secret_sha256.lower()
    )
    is_read = _equals(secret, config.read_secret) | _equals(
        digest, config.read_secret_sha256.lower()
    )
    if not secret:
        return Access.NONE
    if is_write:
        return Access.WRITE
    return Access.READ if is_read else Access.NONE


def _equals(given: str, expected: str) -> bool:
    return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


@hookimpl
def private_pypi_auth_providers() -> list[type[AuthProvider]]:
    return [SecretsProvider]
