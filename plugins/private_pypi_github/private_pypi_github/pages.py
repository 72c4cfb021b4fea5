"""The package index's static site on the GitHub Pages branch, committed as one commit.

The site is the core's static export (``render_site``), each file linked to its asset's
``browser_download_url`` (so only a public repository's files download from it). It is
committed with the Git data API: a tree of every file, a commit on the branch's head, the
branch moved to it; nothing is committed when nothing changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING
from urllib.parse import quote

from private_pypi_github import models
from private_pypi_github.errors import GitHubError

if TYPE_CHECKING:
    from private_pypi_github.client import GitHubClient

PAGES_BRANCH = "gh-pages"
COMMIT_MESSAGE = "Publish the package index (private-pypi)"


def commit_site(
    client: GitHubClient, full_name: str, branch: str, site: Mapping[str, bytes]
) -> str:
    """Make ``site`` (text files: UTF-8) the whole content of ``branch`` (created if missing);
    the commit's sha, or ``""`` when the branch already holds exactly that."""
    repo_url = client.url(f"/repos/{full_name}")
    head = client.request(
        "GET", f"{repo_url}/git/ref/heads/{quote(branch)}", accept=frozenset({404, 409})
    )
    parent = models.string_at(head.json(), "object", "sha") if head.status_code == 200 else None
    entries = [
        {"path": path, "mode": "100644", "type": "blob", "content": content.decode()}
        for path, content in sorted(site.items())
    ]
    tree = models.string_at(
        client.json("POST", f"{repo_url}/git/trees", json={"tree": entries}), "sha"
    )
    if parent is not None:
        parent_commit = client.json("GET", f"{repo_url}/git/commits/{parent}")
        if models.string_at(parent_commit, "tree", "sha") == tree:
            return ""
    new_commit = {"message": COMMIT_MESSAGE, "tree": tree, "parents": [parent] if parent else []}
    commit = models.string_at(
        client.json("POST", f"{repo_url}/git/commits", json=new_commit), "sha"
    )
    if parent is None:
        client.request(
            "POST", f"{repo_url}/git/refs", json={"ref": f"refs/heads/{branch}", "sha": commit}
        )
    else:
        response = client.request(
            "PATCH",
            f"{repo_url}/git/refs/heads/{quote(branch)}",
            json={"sha": commit, "force": False},
            accept=frozenset({422}),
        )
        if response.status_code == 422:
            raise GitHubError(
                f"branch {branch!r} moved while the site was being committed; run it again",
                status=422,
            )
    return commit


def enable_pages(client: GitHubClient, full_name: str, branch: str) -> str:
    """Serve ``branch`` with GitHub Pages (already enabled is fine); the site's URL, if known."""
    url = client.url(f"/repos/{full_name}/pages")
    response = client.request(
        "POST", url, json={"source": {"branch": branch, "path": "/"}}, accept=frozenset({409})
    )
    if response.status_code == 409:
        response = client.request("GET", url)
    html_url = response.json().get("html_url")
    return str(html_url) if html_url else ""
