"""The package index as a static PEP 503 site for GitHub Pages, committed to a branch.

The site's root page lists the projects, ``<project>/index.html`` its files, each linking
to the asset's ``browser_download_url`` (so only a public repository's files download from
it). The whole site is one commit, made with the Git data API: a tree of every file, a commit
on the branch's head, the branch moved to it; nothing is committed when nothing changed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from html import escape
from urllib.parse import quote

from private_pypi_core.index import IndexEntry, PackageIndex
from private_pypi_core.web.pages import project_page, root_page
from private_pypi_github import models
from private_pypi_github.client import GitHubClient, GitHubError

PAGES_BRANCH = "gh-pages"
COMMIT_MESSAGE = "Publish the package index (private-pypi)"
METADATA_SUFFIX = ".metadata"


def render_site(index: PackageIndex, urls: Mapping[str, str]) -> dict[str, str]:
    """The site's files by path; ``urls`` gives each stored file's download URL by filename.

    A file without a URL (no longer stored) is left out, and so is a project left empty.
    """
    site = {".nojekyll": ""}  # serve the files as they are
    projects = []
    for project, entries in index.projects.items():
        listed = [_with_served_metadata(e, urls) for e in entries if e.filename in urls]
        if listed:
            projects.append(project)
            site[f"{project}/index.html"] = _linked(project_page(project, listed), listed, urls)
    site["index.html"] = root_page(projects)
    return site


def _with_served_metadata(entry: IndexEntry, urls: Mapping[str, str]) -> IndexEntry:
    """``entry``, without its core metadata (PEP 658) unless the site serves it where a client
    looks for it: at the file's URL plus ``.metadata``."""
    metadata_url = urls.get(entry.filename + METADATA_SUFFIX)
    if entry.metadata_sha256 and metadata_url == urls[entry.filename] + METADATA_SUFFIX:
        return entry
    return dataclasses.replace(entry, metadata_sha256=None)


def _linked(page: str, entries: list[IndexEntry], urls: Mapping[str, str]) -> str:
    """The core's project page links each file relative to the page (the server serves it
    there); on the site, each link goes to the file's download URL instead."""
    for entry in entries:
        relative = f'href="{quote(entry.filename)}#'
        if relative not in page:
            raise RuntimeError(f"the project page has no link {relative!r} to replace")
        page = page.replace(relative, f'href="{escape(urls[entry.filename])}#', 1)
    return page


def commit_site(client: GitHubClient, full_name: str, branch: str, site: Mapping[str, str]) -> str:
    """Make ``site`` the whole content of ``branch`` (created if missing); the commit's sha,
    or ``""`` when the branch already holds exactly that."""
    repo_url = client.url(f"/repos/{full_name}")
    head = client.request(
        "GET", f"{repo_url}/git/ref/heads/{quote(branch)}", accept=frozenset({404, 409})
    )
    parent = models.string_at(head.json(), "object", "sha") if head.status_code == 200 else None
    entries = [
        {"path": path, "mode": "100644", "type": "blob", "content": content}
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
