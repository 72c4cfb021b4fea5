"""The parts of GitHub's JSON answers the plugin reads, as typed values."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from private_pypi_github.errors import GitHubError

T = TypeVar("T")


@dataclass(frozen=True)
class Repository:
    full_name: str
    default_branch: str
    private: bool
    roles: frozenset[str]  # the true keys of ``permissions``: what the token's user may do


@dataclass(frozen=True)
class Asset:
    id: int
    url: str  # the API URL: with Accept: application/octet-stream it answers the bytes
    browser_download_url: str
    name: str  # as GitHub stored it (renamed if it had special characters)
    label: str | None
    state: str  # "uploaded" when complete; "starter"/"open" after a failed upload
    size: int
    created_at: datetime
    digest: str | None  # "sha256:<hex>" on assets uploaded since mid-2025

    @property
    def filename(self) -> str:
        """The true filename: the label this plugin sets, else the name (a hand upload)."""
        return self.label or self.name

    @property
    def complete(self) -> bool:
        return self.state == "uploaded"

    @property
    def sha256(self) -> str | None:
        algorithm, _, value = (self.digest or "").partition(":")
        return value if algorithm == "sha256" and value else None


@dataclass(frozen=True)
class Release:
    id: int
    tag_name: str
    draft: bool
    upload_url: str  # RFC 6570 template: ...{?name,label}
    assets_url: str
    assets: tuple[Asset, ...]  # as embedded in the release


@dataclass(frozen=True)
class ContentFile:
    sha: str  # the blob sha: the version of the file
    data: bytes | None  # None when too large to be embedded (over 1 MB)
    git_url: str | None  # the blob, for large files


def repository(data: Any) -> Repository:
    fields = _Fields(data, "repository")
    permissions = data.get("permissions") if isinstance(data, dict) else None
    roles = frozenset(role for role, allowed in (permissions or {}).items() if allowed is True)
    return Repository(
        full_name=fields.get("full_name", str),
        default_branch=fields.get("default_branch", str),
        private=fields.get("private", bool),
        roles=roles,
    )


def release(data: Any) -> Release:
    fields = _Fields(data, "release")
    return Release(
        id=fields.get("id", int),
        tag_name=fields.get("tag_name", str),
        draft=fields.get("draft", bool),
        upload_url=fields.get("upload_url", str),
        assets_url=fields.get("assets_url", str),
        assets=tuple(asset(item) for item in fields.get("assets", list)),
    )


def asset(data: Any) -> Asset:
    fields = _Fields(data, "release asset")
    return Asset(
        id=fields.get("id", int),
        url=fields.get("url", str),
        browser_download_url=fields.get("browser_download_url", str),
        name=fields.get("name", str),
        label=fields.optional("label", str),
        state=fields.get("state", str),
        size=fields.get("size", int),
        created_at=fields.timestamp("created_at"),
        digest=fields.optional("digest", str),
    )


def content_file(data: Any) -> ContentFile:
    fields = _Fields(data, "content file")
    if fields.get("type", str) != "file":
        raise GitHubError("the index path names a directory or link in the repository, no file")
    encoded = fields.get("content", str)
    sha = fields.get("sha", str)
    git_url = fields.optional("git_url", str)
    if fields.get("encoding", str) != "base64":
        return ContentFile(sha=sha, data=None, git_url=git_url)
    try:
        return ContentFile(sha=sha, data=base64.b64decode(encoded), git_url=git_url)
    except binascii.Error:
        raise GitHubError("GitHub sent a file's content in broken base64") from None


def string_at(data: Any, *keys: str) -> str:
    """The string at the end of ``keys`` in a JSON answer, e.g. ``"object", "sha"``."""
    for key in keys[:-1]:
        data = _Fields(data, "answer").get(key, dict)
    return _Fields(data, "answer").get(keys[-1], str)


class _Fields:
    """Typed access to a JSON object; a missing or mistyped key is a ``GitHubError``."""

    def __init__(self, data: Any, what: str) -> None:
        if not isinstance(data, dict):
            raise GitHubError(f"GitHub's answer is not a {what} object")
        self.data: dict[str, Any] = data
        self.what = what

    def get(self, key: str, kind: type[T]) -> T:
        value = self.data.get(key)
        if not isinstance(value, kind):
            raise GitHubError(f"GitHub's {self.what} has no valid {key!r}")
        return value

    def optional(self, key: str, kind: type[T]) -> T | None:
        return None if self.data.get(key) is None else self.get(key, kind)

    def timestamp(self, key: str) -> datetime:
        try:
            return datetime.fromisoformat(self.get(key, str))
        except ValueError:
            raise GitHubError(f"GitHub's {self.what} has no valid {key!r}") from None
