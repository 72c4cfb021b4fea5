"""Setting up a package repository on GitHub: the repository and its first files.

Every step checks first, so running it again changes nothing that is already there.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING
from urllib.parse import quote

from private_pypi_core.api import Access
from private_pypi_github import models
from private_pypi_github.access import access_of
from private_pypi_github.errors import GitHubError, message_of
from private_pypi_github.models import Repository

if TYPE_CHECKING:
    from private_pypi_github.client import GitHubClient

DESCRIPTION = "Python packages served by private-pypi"


def ensure_repository(client: GitHubClient, owner: str, repo: str) -> tuple[Repository, bool]:
    """The repository ``owner/repo``, created private if missing; whether it was created.

    It is created with a first commit (a README), since GitHub refuses releases in an empty
    repository. ``owner`` is the token's user or an organisation.
    """
    response = client.request("GET", client.url(f"/repos/{owner}/{repo}"), accept=frozenset({404}))
    if response.status_code != 404:
        repository = models.repository(response.json())
        if access_of(repository, response.headers.get("X-OAuth-Scopes")) is not Access.WRITE:
            raise GitHubError(f"the token may not write to {owner}/{repo}")
        return repository, False
    login = models.string_at(client.json("GET", client.url("/user")), "login")
    create_url = (
        client.url("/user/repos")
        if login.lower() == owner.lower()
        else client.url(f"/orgs/{owner}/repos")
    )
    response = client.request(
        "POST",
        create_url,
        json={"name": repo, "private": True, "auto_init": True, "description": DESCRIPTION},
        accept=frozenset({422}),
    )
    if response.status_code == 422:
        raise GitHubError(
            f"GitHub refused to create {owner}/{repo}: {message_of(response)} "
            "(does it exist, hidden from this token?)",
            status=422,
        )
    return models.repository(response.json()), True


def add_file(
    client: GitHubClient, full_name: str, branch: str, path: str, content: str, message: str
) -> bool:
    """Commit ``path`` with ``content`` unless the branch has that file already; whether it
    committed."""
    url = client.url(f"/repos/{full_name}/contents/{quote(path)}")
    response = client.request("GET", url, params={"ref": branch}, accept=frozenset({404}))
    if response.status_code != 404:
        return False
    client.request(
        "PUT",
        url,
        json={
            "message": message,
            "content": base64.b64encode(content.encode()).decode(),
            "branch": branch,
        },
    )
    return True


def ensure_branch(client: GitHubClient, full_name: str, branch: str, start: str) -> bool:
    """Create ``branch`` at the head of ``start`` unless it exists; whether it created it."""
    refs = client.url(f"/repos/{full_name}/git")
    response = client.request("GET", f"{refs}/ref/heads/{quote(branch)}", accept=frozenset({404}))
    if response.status_code != 404:
        return False
    head = models.string_at(client.json("GET", f"{refs}/ref/heads/{quote(start)}"), "object", "sha")
    client.request("POST", f"{refs}/refs", json={"ref": f"refs/heads/{branch}", "sha": head})
    return True
