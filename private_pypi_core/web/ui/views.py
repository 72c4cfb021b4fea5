"""What the UI's pages show, computed from a repository's index: no HTTP, no storage."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote, urlencode, urlsplit

from packaging.utils import canonicalize_name

from private_pypi_core.index import UNKNOWN_TIME, IndexEntry, PackageIndex, ProjectStatus
from private_pypi_core.web.json_api import latest_version

PAGE_SIZE = 50
SORTS = ("name", "updated")  # by name; most recently uploaded first


@dataclass(frozen=True)
class ProjectRow:
    """One project in the list."""

    name: str  # normalised
    latest: str | None
    updated: datetime  # its newest upload
    status: ProjectStatus


@dataclass(frozen=True)
class Listing:
    """One page of a repository's projects matching a search."""

    rows: list[ProjectRow]
    query: str
    sort: str
    page: int  # 1-based
    pages: int  # at least 1, even when nothing matches
    matches: int

    def url(self, page: int) -> str:
        """The URL of page ``page`` of the same search."""
        params = {"q": self.query} if self.query else {}
        if self.sort != SORTS[0]:
            params["sort"] = self.sort
        if page != 1:
            params["page"] = str(page)
        return f"/?{urlencode(params)}" if params else "/"


def list_projects(index: PackageIndex, query: str, sort: str, page: int) -> Listing:
    """The projects whose normalised name contains the normalised ``query`` (every project for
    an empty one), sorted by ``sort`` (one of ``SORTS``), page ``page`` of them (moved into
    range), ``PAGE_SIZE`` a page."""
    wanted = canonicalize_name(query.strip())
    names = [name for name in index.projects if wanted in name]
    if sort == "updated":
        newest = {name: _newest_upload(index.projects[name]) for name in names}
        names.sort(key=lambda name: (-newest[name].timestamp(), name))
    pages = max(1, math.ceil(len(names) / PAGE_SIZE))
    page = min(max(page, 1), pages)
    shown = names[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    rows = [
        ProjectRow(
            name=name,
            latest=latest_version(index.projects[name]),
            updated=_newest_upload(index.projects[name]),
            status=index.status_of(name),
        )
        for name in shown
    ]
    return Listing(rows, query.strip(), sort, page, pages, len(names))


def _newest_upload(entries: Sequence[IndexEntry]) -> datetime:
    return max(entry.upload_time or UNKNOWN_TIME for entry in entries)


@dataclass(frozen=True)
class Release:
    """One version of a project and its files."""

    version: str
    files: list[IndexEntry]  # by filename; empty when the project serves no file

    @property
    def yanked(self) -> bool:
        """Every file of the release is yanked (PEP 592: the release is)."""
        return bool(self.files) and all(entry.yanked is not None for entry in self.files)

    @property
    def yanked_reason(self) -> str:
        return next((entry.yanked for entry in self.files if entry.yanked), "")


def releases(entries: Sequence[IndexEntry], status: ProjectStatus) -> list[Release]:
    """The project's versions, newest first, with their files unless its status serves none."""
    by_version: dict[str, list[IndexEntry]] = {}
    for entry in sorted(entries, key=lambda e: e.parsed_version, reverse=True):
        by_version.setdefault(entry.version, [])
        if status.serves_files:
            by_version[entry.version].append(entry)
    return [
        Release(version, sorted(files, key=lambda e: e.filename))
        for version, files in by_version.items()
    ]


def file_url(entry: IndexEntry) -> str:
    """Where the file downloads, with the same credential as the page."""
    return f"/simple/{quote(entry.project)}/{quote(entry.filename)}"


@dataclass(frozen=True)
class InstallCommand:
    tool: str
    text: str


def install_commands(
    project: str, version: str, repository: str, public_url: str
) -> list[InstallCommand]:
    """Copy-paste commands for pip, uv and poetry (for poetry an ``explicit`` source: only the
    projects added from it are looked up there). The secret stays a shell variable, never
    written into a page; without the server's public URL (``--url``) the host is a
    placeholder, since the server builds no URL from the request's ``Host`` header."""
    base = public_url or "https://SERVER"
    parts = urlsplit(base)
    index_url = f"{base}/simple/"
    with_secret = f"{parts.scheme}://{repository}:$READ_SECRET@{parts.netloc}{parts.path}/simple/"
    requirement = f"{project}=={version}"
    return [
        InstallCommand("pip", f'pip install --index-url "{with_secret}" "{requirement}"'),
        InstallCommand("uv", f'uv pip install --index-url "{with_secret}" "{requirement}"'),
        InstallCommand(
            "poetry",
            f"poetry source add --priority=explicit private {index_url}\n"
            f'poetry config http-basic.private {repository} "$READ_SECRET"\n'
            f'poetry add --source private "{requirement}"',
        ),
    ]
