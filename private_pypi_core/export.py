"""Static export: a package repository's index as files any web server or object store can host.

The site has the server's URLs below ``/simple/`` and its pages, byte for byte::

    index.html, index.json                 the projects (PEP 503 HTML, PEP 691 JSON)
    <project>/index.html, index.json       the project's files: hashes, yanks, Requires-Python,
                                           core metadata, size and upload time, PEP 708; its
                                           status (PEP 792: a quarantined one lists no file)
    <project>/<filename>                   the file, unless it is linked elsewhere
    <project>/<filename>.metadata          its core metadata (PEP 658), where the index has it

Provenance (PEP 740) is not exported: its URL must be a fully-qualified one the server serves.

A static host cannot negotiate formats: it answers a folder's URL with its ``index.html``, which
pip, uv and poetry read; ``index.json`` is there for a client that asks for it by name.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from private_pypi_core.backend import Backend, DistFile
from private_pypi_core.errors import ConfigError
from private_pypi_core.files import atomic_write, atomic_write_stream, remove_stale_temp_files
from private_pypi_core.index import IndexEntry
from private_pypi_core.index_store import ShardCache, read_remote
from private_pypi_core.metadata import COMPANION_SUFFIX
from private_pypi_core.progress import Progress
from private_pypi_core.web import pages

#: Where a file is linked from the site: its URL, or ``None`` to leave it out.
FileUrl = Callable[[DistFile], str | None]

SITE_FOLDER = "simple"  # DEST/simple/ is the index URL, as /simple/ is on the server
MANIFEST = ".private-pypi-export.json"  # what an export wrote: its mark, and what to remove


@dataclass
class _Plan:
    pages: dict[str, bytes] = field(default_factory=dict)  # HTML and JSON, by path
    files: list[_Copy] = field(default_factory=list)  # distributions to copy beside the pages
    metadata: list[_Copy] = field(default_factory=list)  # their core metadata, likewise


@dataclass(frozen=True)
class _Copy:
    path: str
    dist: DistFile
    size: int


def render_site(
    backend: Backend, *, file_url: FileUrl | None = None, progress: Progress | None = None
) -> dict[str, bytes]:
    """The static site's pages and metadata files, by path relative to the index URL.

    Without ``file_url``, each stored file is linked beside its pages (``<project>/<filename>``,
    which ``export_site`` copies there) and its core metadata is in the site. With it, each
    file links to ``file_url(dist)`` and is left out where that is ``None``; its metadata is
    advertised only when ``file_url`` gives the metadata file the file's URL plus
    ``.metadata``, where clients look for it (served there, so not part of the site). A
    project left without files is left out. ``progress`` counts the metadata files read from
    the store (a download each, for some stores).
    """
    progress = progress or Progress()
    plan = _plan(backend, file_url)
    site = dict(plan.pages)
    progress.add_total(len(plan.metadata))
    for copy in plan.metadata:
        with backend.open_file(copy.dist) as stream:
            site[copy.path] = stream.read()
        progress.advance()
    return site


def export_site(
    backend: Backend,
    dest: Path,
    *,
    file_url: FileUrl | None = None,
    progress: Progress | None = None,
) -> dict[str, bytes]:
    """Write ``render_site``'s site to ``dest/simple/``, with the files it links beside it.

    Distribution files are streamed from the store. ``dest`` must be missing, empty or an
    earlier export, which is brought up to date (``ConfigError`` otherwise). Returns the pages.
    ``progress`` counts the distribution and metadata files, copied or found up to date.
    """
    progress = progress or Progress()
    # File by file (each atomic), files before the pages that link them and the root page last:
    # a web server serving DEST meanwhile never links to a missing file, and DEST never
    # disappears, as it would for a moment in a swap of folders (which a mount point forbids).
    previous = _previous_export(dest)
    plan = _plan(backend, file_url)
    site = dest / SITE_FOLDER
    written = {f"{SITE_FOLDER}/{path}" for path in plan.pages}
    written |= {f"{SITE_FOLDER}/{copy.path}" for copy in plan.files + plan.metadata}
    _write_manifest(dest, previous | written)  # first: a crash leaves nothing unaccounted for
    progress.add_total(len(plan.files) + len(plan.metadata))
    for copy in plan.files + plan.metadata:
        _copy(backend, copy, site / copy.path)
        progress.advance()
    for path in sorted(plan.pages, key=_is_root_page):
        _write(site / path, plan.pages[path])
    for path in sorted(previous - written):
        (dest / path).unlink(missing_ok=True)
        folder = (dest / path).parent
        if folder != site and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()  # a project no longer listed
    _write_manifest(dest, written)
    return plan.pages


def _plan(backend: Backend, file_url: FileUrl | None) -> _Plan:
    label = f"the index file of package repository {backend.config.name!r}"
    index = read_remote(backend, ShardCache(), label=label).index
    beside = file_url is None
    sizes: dict[str, int] = {}
    if file_url is None:
        sizes = {stored.filename: stored.size for stored in backend.list_files()}
        file_url = _beside_pages(sizes)
    plan = _Plan()
    projects = []
    for project, entries in index.projects.items():
        status = index.status_of(project)
        listed: list[IndexEntry] = []
        urls: dict[str, str] = {}
        for entry in entries:
            url = file_url(entry.dist)
            if url is None:
                continue
            metadata_url = file_url(entry.metadata_dist)
            served = bool(entry.metadata_sha256) and metadata_url == url + COMPANION_SUFFIX
            if not served:
                entry = dataclasses.replace(entry, metadata_sha256=None)
            if beside and status.serves_files:
                plan.files.append(_Copy(f"{project}/{entry.filename}", entry.dist, entry.size))
                if served:
                    metadata = entry.metadata_dist
                    path = f"{project}/{metadata.filename}"
                    plan.metadata.append(_Copy(path, metadata, sizes[metadata.filename]))
            listed.append(entry)
            urls[entry.filename] = url
        if not listed:
            continue
        projects.append(project)
        tracks, alternates = pages.pep708_urls(backend.config, project)
        html = pages.project_page(project, listed, tracks, alternates, urls, status)
        plan.pages[f"{project}/index.html"] = html.encode()
        plan.pages[f"{project}/index.json"] = pages.project_json(
            project, listed, tracks, alternates, urls, status
        )
    plan.pages["index.html"] = pages.root_page(projects).encode()
    plan.pages["index.json"] = pages.root_json(projects)
    return plan


def _beside_pages(stored: dict[str, int]) -> FileUrl:
    """Stored files, linked relative to their project's pages."""

    def url(dist: DistFile) -> str | None:
        return quote(dist.filename) if dist.filename in stored else None

    return url


def _is_root_page(path: str) -> bool:
    """Sorts the root pages after the project pages they link."""
    return "/" not in path


def _previous_export(dest: Path) -> set[str]:
    """The paths an earlier export wrote to ``dest``; none for a missing or empty folder."""
    manifest = dest / MANIFEST
    if dest.exists() and not dest.is_dir():
        raise ConfigError(f"{dest} is not a folder")
    if not manifest.is_file():
        if dest.is_dir() and any(dest.iterdir()):
            raise ConfigError(
                f"{dest} is neither empty nor an earlier export: give a new or empty folder"
            )
        return set()
    try:
        paths = json.loads(manifest.read_bytes())["paths"]
    except (ValueError, KeyError, TypeError) as error:
        raise ConfigError(f"{manifest}: not a valid export manifest: {error}") from None
    if not isinstance(paths, list) or not all(_in_site(path) for path in paths):
        raise ConfigError(f"{manifest}: not a valid export manifest: a path outside the site")
    remove_stale_temp_files(dest / SITE_FOLDER, "**/.*.tmp")  # of an export cut short
    return set(paths)


def _in_site(path: object) -> bool:
    """Whether ``path`` is one an export writes: a plain relative path under the site."""
    if not isinstance(path, str):
        return False
    parts = PurePosixPath(path).parts
    return len(parts) >= 2 and parts[0] == SITE_FOLDER and ".." not in parts


def _write_manifest(dest: Path, paths: set[str]) -> None:
    data = json.dumps({"paths": sorted(paths)}, indent=0).encode()
    try:
        atomic_write(dest / MANIFEST, data)
    except OSError as error:
        raise ConfigError(f"cannot write to {dest}: {error.strerror or error}") from None


def _write(path: Path, data: bytes) -> None:
    """Write a page or metadata file, unless it already holds ``data`` (keeps its mtime, which
    static servers make their ETags and Last-Modified of)."""
    if not (path.is_file() and path.read_bytes() == data):
        atomic_write(path, data)


def _copy(backend: Backend, copy: _Copy, path: Path) -> None:
    """Stream a stored file to ``path``, unless it is there already (a published file never
    changes, so a file of the right size is that file)."""
    if path.is_file() and path.stat().st_size == copy.size:
        return
    with backend.open_file(copy.dist) as stream:
        atomic_write_stream(path, stream)
