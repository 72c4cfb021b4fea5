"""The emulated GitHub's data: users, repositories, git objects, releases and assets, and how
each is rendered as GitHub's JSON (the shapes of githubkit-schemas' models)."""

from __future__ import annotations

import base64
import hashlib
import itertools
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

ROLES = ("pull", "triage", "push", "maintain", "admin")  # each includes the ones before
MAX_EMBEDDED_CONTENT = 1 << 20  # the contents API embeds files up to 1 MB
_ids = itertools.count(1000)


def new_id() -> int:
    return next(_ids)


def timestamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def git_sha(kind: str, data: bytes) -> str:
    return hashlib.sha1(f"{kind} {len(data)}\0".encode() + data, usedforsecurity=False).hexdigest()


@dataclass(frozen=True)
class Hosts:
    """Where each of GitHub's hosts listens: API, uploads, signed downloads, web."""

    api: str  # e.g. http://127.0.0.1:PORT/api/v3, as on GitHub Enterprise Server
    uploads: str
    objects: str
    web: str


@dataclass
class Token:
    login: str
    scopes: str | None  # X-OAuth-Scopes of a classic token; None for a fine-grained one


@dataclass
class Commit:
    sha: str
    tree: str
    files: dict[str, bytes]
    parents: list[str]
    message: str
    created_at: float


@dataclass
class Asset:
    id: int
    name: str
    label: str | None
    content_type: str
    data: bytes
    state: str  # "uploaded", or "open" for an interrupted upload's leftover
    uploader: str
    created_at: float


@dataclass
class Release:
    id: int
    tag_name: str
    name: str | None
    body: str | None
    draft: bool
    target_commitish: str
    author: str
    created_at: float
    assets: list[Asset] = field(default_factory=list)


@dataclass
class Repo:
    id: int
    owner: str
    name: str
    private: bool
    default_branch: str
    created_at: float
    roles: dict[str, str] = field(default_factory=dict)  # login -> role
    branches: dict[str, str] = field(default_factory=dict)  # name -> commit sha
    releases: list[Release] = field(default_factory=list)  # newest first
    pages: dict[str, str] | None = None  # the Pages source, once enabled
    description: str | None = None

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"

    def role_of(self, login: str | None) -> str | None:
        return None if login is None else self.roles.get(login)

    def may(self, login: str | None, role: str) -> bool:
        held = self.role_of(login)
        return held is not None and ROLES.index(held) >= ROLES.index(role)

    def visible_to(self, login: str | None) -> bool:
        return not self.private or self.role_of(login) is not None

    def release(self, release_id: int) -> Release | None:
        return next((r for r in self.releases if r.id == release_id), None)

    def asset(self, asset_id: int) -> tuple[Release, Asset] | None:
        for release in self.releases:
            for asset in release.assets:
                if asset.id == asset_id:
                    return release, asset
        return None


def github_asset_name(name: str) -> str:
    """GitHub's renaming of an uploaded asset (as its docs say: special characters and leading
    or trailing periods), modelled as observed: each other character becomes a period, and a
    name starting with a period gets ``default`` before it."""
    renamed = re.sub(r"[^A-Za-z0-9._-]", ".", name).rstrip(".")
    return "default" + renamed if renamed.startswith(".") else renamed


class Renderer:
    """GitHub's JSON for the emulator's objects."""

    def __init__(self, hosts: Hosts) -> None:
        self.hosts = hosts

    def user(self, login: str, *, private: bool = False) -> dict[str, Any]:
        api, web = self.hosts.api, self.hosts.web
        user: dict[str, Any] = {
            "login": login,
            "id": int(git_sha("user", login.encode())[:7], 16),
            "node_id": f"U_{login}",
            "avatar_url": f"{web}/avatars/{login}",
            "gravatar_id": "",
            "url": f"{api}/users/{login}",
            "html_url": f"{web}/{login}",
            "type": "User",
            "site_admin": False,
        }
        for name, suffix in [
            ("followers_url", "followers"),
            ("following_url", "following{/other_user}"),
            ("gists_url", "gists{/gist_id}"),
            ("starred_url", "starred{/owner}{/repo}"),
            ("subscriptions_url", "subscriptions"),
            ("organizations_url", "orgs"),
            ("repos_url", "repos"),
            ("events_url", "events{/privacy}"),
            ("received_events_url", "received_events"),
        ]:
            user[name] = f"{api}/users/{login}/{suffix}"
        if private:
            user |= {
                "name": login,
                "company": None,
                "blog": None,
                "location": None,
                "email": None,
                "hireable": None,
                "bio": None,
                "public_repos": 0,
                "public_gists": 0,
                "followers": 0,
                "following": 0,
                "created_at": timestamp(0),
                "updated_at": timestamp(0),
                "private_gists": 0,
                "total_private_repos": 0,
                "owned_private_repos": 0,
                "disk_usage": 0,
                "collaborators": 0,
                "two_factor_authentication": True,
            }
        return user

    def repository(self, repo: Repo, login: str | None) -> dict[str, Any]:
        api, web = self.hosts.api, self.hosts.web
        url = f"{api}/repos/{repo.full_name}"
        data: dict[str, Any] = {
            "id": repo.id,
            "node_id": f"R_{repo.id}",
            "name": repo.name,
            "full_name": repo.full_name,
            "owner": self.user(repo.owner),
            "private": repo.private,
            "visibility": "private" if repo.private else "public",
            "html_url": f"{web}/{repo.full_name}",
            "description": repo.description,
            "fork": False,
            "url": url,
            "git_url": f"git://127.0.0.1/{repo.full_name}.git",
            "ssh_url": f"git@127.0.0.1:{repo.full_name}.git",
            "clone_url": f"{web}/{repo.full_name}.git",
            "svn_url": f"{web}/{repo.full_name}",
            "mirror_url": None,
            "homepage": None,
            "language": None,
            "size": 0,
            "default_branch": repo.default_branch,
            "archived": False,
            "disabled": False,
            "has_issues": True,
            "has_projects": True,
            "has_wiki": True,
            "has_pages": repo.pages is not None,
            "has_discussions": False,
            "pushed_at": timestamp(repo.created_at),
            "created_at": timestamp(repo.created_at),
            "updated_at": timestamp(repo.created_at),
            "subscribers_count": 0,
            "network_count": 0,
            "license": None,
        }
        for count in ("forks", "forks_count", "stargazers_count", "watchers", "watchers_count"):
            data[count] = 0
        for count in ("open_issues", "open_issues_count"):
            data[count] = 0
        for name in _REPOSITORY_LINKS:
            data[f"{name}_url"] = f"{url}/{_REPOSITORY_LINKS[name]}"
        role = repo.role_of(login)
        if role is not None or (login is not None and not repo.private):
            data["permissions"] = {r: role is not None and repo.may(login, r) for r in ROLES}
        return data

    def release(self, repo: Repo, release: Release) -> dict[str, Any]:
        api, web = self.hosts.api, self.hosts.web
        url = f"{api}/repos/{repo.full_name}/releases/{release.id}"
        return {
            "url": url,
            "html_url": f"{web}/{repo.full_name}/releases/tag/{release.tag_name}",
            "assets_url": f"{url}/assets",
            "upload_url": (
                f"{self.hosts.uploads}/repos/{repo.full_name}/releases/{release.id}/assets"
                "{?name,label}"
            ),
            "tarball_url": f"{api}/repos/{repo.full_name}/tarball/{release.tag_name}",
            "zipball_url": f"{api}/repos/{repo.full_name}/zipball/{release.tag_name}",
            "id": release.id,
            "node_id": f"RE_{release.id}",
            "tag_name": release.tag_name,
            "target_commitish": release.target_commitish,
            "name": release.name,
            "body": release.body,
            "draft": release.draft,
            "prerelease": False,
            "immutable": False,
            "created_at": timestamp(release.created_at),
            "published_at": None if release.draft else timestamp(release.created_at),
            "updated_at": timestamp(release.created_at),
            "author": self.user(release.author),
            "assets": [self.asset(repo, release, asset) for asset in release.assets],
        }

    def asset(self, repo: Repo, release: Release, asset: Asset) -> dict[str, Any]:
        digest = hashlib.sha256(asset.data).hexdigest()
        return {
            "url": f"{self.hosts.api}/repos/{repo.full_name}/releases/assets/{asset.id}",
            "browser_download_url": (
                f"{self.hosts.web}/{repo.full_name}/releases/download/"
                f"{release.tag_name}/{asset.name}"
            ),
            "id": asset.id,
            "node_id": f"RA_{asset.id}",
            "name": asset.name,
            "label": asset.label,
            "state": asset.state,
            "content_type": asset.content_type,
            "size": len(asset.data),
            "digest": f"sha256:{digest}" if asset.state == "uploaded" else None,
            "download_count": 0,
            "created_at": timestamp(asset.created_at),
            "updated_at": timestamp(asset.created_at),
            "uploader": self.user(asset.uploader),
        }

    def content_file(self, repo: Repo, path: str, data: bytes, ref: str) -> dict[str, Any]:
        api, web = self.hosts.api, self.hosts.web
        sha = git_sha("blob", data)
        url = f"{api}/repos/{repo.full_name}/contents/{path}?ref={ref}"
        git_url = f"{api}/repos/{repo.full_name}/git/blobs/{sha}"
        html_url = f"{web}/{repo.full_name}/blob/{ref}/{path}"
        embedded = len(data) <= MAX_EMBEDDED_CONTENT
        return {
            "type": "file",
            "encoding": "base64" if embedded else "none",
            "size": len(data),
            "name": path.rsplit("/", 1)[-1],
            "path": path,
            "content": _base64_lines(data) if embedded else "",
            "sha": sha,
            "url": url,
            "git_url": git_url,
            "html_url": html_url,
            "download_url": f"{web}/raw/{repo.full_name}/{ref}/{path}",
            "_links": {"self": url, "git": git_url, "html": html_url},
        }

    def file_commit(self, repo: Repo, path: str, data: bytes, commit: Commit) -> dict[str, Any]:
        content = self.content_file(repo, path, data, commit.sha)
        del content["encoding"], content["content"]
        return {"content": content, "commit": self.git_commit(repo, commit)}

    def git_commit(self, repo: Repo, commit: Commit) -> dict[str, Any]:
        api, web = self.hosts.api, self.hosts.web
        person = {"name": "emulator", "email": "emulator@example.com"}
        person["date"] = timestamp(commit.created_at)
        commits = f"{api}/repos/{repo.full_name}/git/commits"
        return {
            "sha": commit.sha,
            "node_id": f"C_{commit.sha}",
            "url": f"{commits}/{commit.sha}",
            "html_url": f"{web}/{repo.full_name}/commit/{commit.sha}",
            "author": person,
            "committer": person,
            "message": commit.message,
            "tree": {"sha": commit.tree, "url": f"{api}/repos/{repo.full_name}/git/trees/x"},
            "parents": [
                {"sha": p, "url": f"{commits}/{p}", "html_url": f"{web}/commit/{p}"}
                for p in commit.parents
            ],
            "verification": {
                "verified": False,
                "reason": "unsigned",
                "signature": None,
                "payload": None,
                "verified_at": None,
            },
        }

    def git_ref(self, repo: Repo, branch: str, sha: str) -> dict[str, Any]:
        api = self.hosts.api
        return {
            "ref": f"refs/heads/{branch}",
            "node_id": f"REF_{branch}",
            "url": f"{api}/repos/{repo.full_name}/git/refs/heads/{branch}",
            "object": {
                "type": "commit",
                "sha": sha,
                "url": f"{api}/repos/{repo.full_name}/git/commits/{sha}",
            },
        }

    def git_tree(self, repo: Repo, sha: str, files: dict[str, bytes]) -> dict[str, Any]:
        api = self.hosts.api
        return {
            "sha": sha,
            "url": f"{api}/repos/{repo.full_name}/git/trees/{sha}",
            "truncated": False,
            "tree": [
                {
                    "path": path,
                    "mode": "100644",
                    "type": "blob",
                    "sha": git_sha("blob", data),
                    "size": len(data),
                }
                for path, data in sorted(files.items())
            ],
        }

    def blob(self, repo: Repo, sha: str, data: bytes) -> dict[str, Any]:
        return {
            "content": _base64_lines(data),
            "encoding": "base64",
            "url": f"{self.hosts.api}/repos/{repo.full_name}/git/blobs/{sha}",
            "sha": sha,
            "size": len(data),
            "node_id": f"B_{sha}",
        }

    def page(self, repo: Repo) -> dict[str, Any]:
        assert repo.pages is not None
        return {
            "url": f"{self.hosts.api}/repos/{repo.full_name}/pages",
            "status": "built",
            "cname": None,
            "custom_404": False,
            "html_url": f"{self.hosts.web}/pages/{repo.full_name}/",
            "source": repo.pages,
            "public": True,
        }


def _base64_lines(data: bytes) -> str:
    """Base64 as GitHub sends it: in lines of 60 characters."""
    encoded = base64.b64encode(data).decode()
    return "".join(encoded[i : i + 60] + "\n" for i in range(0, len(encoded), 60))


_REPOSITORY_LINKS = {
    "archive": "{archive_format}{/ref}",
    "assignees": "assignees{/user}",
    "blobs": "git/blobs{/sha}",
    "branches": "branches{/branch}",
    "collaborators": "collaborators{/collaborator}",
    "comments": "comments{/number}",
    "commits": "commits{/sha}",
    "compare": "compare/{base}...{head}",
    "contents": "contents/{+path}",
    "contributors": "contributors",
    "deployments": "deployments",
    "downloads": "downloads",
    "events": "events",
    "forks": "forks",
    "git_commits": "git/commits{/sha}",
    "git_refs": "git/refs{/sha}",
    "git_tags": "git/tags{/sha}",
    "issue_comment": "issues/comments{/number}",
    "issue_events": "issues/events{/number}",
    "issues": "issues{/number}",
    "keys": "keys{/key_id}",
    "labels": "labels{/name}",
    "languages": "languages",
    "merges": "merges",
    "milestones": "milestones{/number}",
    "notifications": "notifications{?since,all,participating}",
    "pulls": "pulls{/number}",
    "releases": "releases{/id}",
    "stargazers": "stargazers",
    "statuses": "statuses/{sha}",
    "subscribers": "subscribers",
    "subscription": "subscription",
    "tags": "tags",
    "teams": "teams",
    "trees": "git/trees{/sha}",
    "hooks": "hooks",
}
