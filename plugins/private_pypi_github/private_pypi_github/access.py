"""What a token may do in the package repository, from GitHub's answer about the repository.

``GET /repos/{owner}/{repo}`` with the token answers 404 (or 401 for a bad token) when the
token cannot see the repository, and otherwise the user's role in ``permissions``. A classic
token also lists its scopes in ``X-OAuth-Scopes``: without ``repo`` (or ``public_repo`` on a
public repository) it cannot write, whatever the user's role. A fine-grained token says
nothing of its own permissions, so the user's role decides; GitHub still refuses an upload the
token may not make.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from private_pypi_core.api import Access, AuthProvider, Credential
from private_pypi_github.models import Repository

if TYPE_CHECKING:
    from private_pypi_github.backend import GitHubBackend

WRITE_ROLES = frozenset({"admin", "maintain", "push"})
# Printable ASCII without spaces, as every kind of GitHub token is; anything else would not
# even make a valid HTTP header.
TOKEN = re.compile(r"[!-~]{1,1024}")


def access_of(repository: Repository, oauth_scopes: str | None) -> Access:
    """The access of a token that can see ``repository``."""
    if not repository.roles & WRITE_ROLES:
        return Access.READ  # it can see the repository, so it can read it
    if oauth_scopes is None:
        return Access.WRITE
    scopes = {scope.strip() for scope in oauth_scopes.split(",")}
    if "repo" in scopes or ("public_repo" in scopes and not repository.private):
        return Access.WRITE
    return Access.READ


def plausible_token(secret: str) -> bool:
    """Whether ``secret`` can be a token at all: sent only if it fits in an HTTP header."""
    return bool(TOKEN.fullmatch(secret))


class GitHubTokenProvider(AuthProvider):
    """``github``, the auth of a GitHub repository: a user's own token, sent as the secret with
    the repository's name as the username, may do what GitHub lets it do there."""

    name = "github"

    def authenticate(self, credential: Credential) -> Access | None:
        if credential.username != self.repository:
            return None
        backend: GitHubBackend = self.backend  # type: ignore[assignment]
        return backend.token_access(credential.secret)
