"""The JSON API in pypi.org's shape: ``/pypi/<project>/json`` (and per version)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import falcon
import falcon.asgi
from packaging.version import InvalidVersion, Version

from private_pypi_core.auth import Action
from private_pypi_core.dists import validate_project
from private_pypi_core.errors import NotFound
from private_pypi_core.index import UNKNOWN_TIME, IndexEntry
from private_pypi_core.metadata import parse_metadata
from private_pypi_core.repository import Repository
from private_pypi_core.web.downloads import patiently, refreshed
from private_pypi_core.web.pages import upload_time
from private_pypi_core.web.runtime import Runtime

# Metadata fields (packaging's RawMetadata keys) copied to "info" under the same name.
INFO_FIELDS = (
    "author",
    "author_email",
    "classifiers",
    "description",
    "description_content_type",
    "download_url",
    "dynamic",
    "home_page",
    "license",
    "license_expression",
    "maintainer",
    "maintainer_email",
    "platforms",
    "project_urls",
    "provides_extra",
    "requires_dist",
    "requires_python",
    "summary",
)


class ProjectJson:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, project: str
    ) -> None:
        await self._answer(req, resp, project, None)

    async def on_get_version(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, project: str, version: str
    ) -> None:
        await self._answer(req, resp, project, version)

    async def _answer(
        self,
        req: falcon.asgi.Request,
        resp: falcon.asgi.Response,
        project: str,
        version: str | None,
    ) -> None:
        repository = await self.runtime.authorize(req, Action.READ)
        normalized = validate_project(project)
        await refreshed(self.runtime, repository, normalized, resp)
        index = repository.index
        entries = index.files_of(normalized)
        if not entries:
            raise NotFound(f"No project named {normalized!r} in {repository.name!r}.")
        if not index.status_of(normalized).serves_files:
            raise NotFound(f"Project {normalized!r} is quarantined: none of its files is served.")
        chosen = latest_version(entries) if version is None else _matching_version(entries, version)
        if chosen is None:
            raise NotFound(f"No version {version!r} of project {normalized!r}.")
        files = [e for e in entries if e.version == chosen]
        metadata = await patiently(
            self.runtime, repository, normalized, _metadata_of, repository, files
        )
        # Path-only URLs unless the operator gave the public URL: never the Host header,
        # which whoever sends the request chooses.
        public_url = self.runtime.settings.public_url
        base = f"{public_url}/simple/{normalized}/"
        releases: dict[str, list[dict[str, Any]]] = {}
        for entry in sorted(entries, key=lambda e: (e.parsed_version, e.filename)):
            releases.setdefault(entry.version, []).append(_file(entry, base))
        document = {
            "info": _info(normalized, chosen, files, metadata, public_url),
            "last_serial": int(max(e.upload_time or UNKNOWN_TIME for e in entries).timestamp()),
            "releases": releases if version is None else {},
            "urls": [_file(entry, base) for entry in files],
            "vulnerabilities": [],
        }
        resp.content_type = falcon.MEDIA_JSON
        resp.data = json.dumps(document).encode()


def latest_version(entries: Sequence[IndexEntry]) -> str | None:
    """The newest version with a file not yanked, preferring final releases, as pypi.org does
    (the web UI shows the same)."""
    live = [e for e in entries if e.yanked is None] or list(entries)
    finals = [e for e in live if not e.parsed_version.is_prerelease] or live
    return max(finals, key=lambda e: e.parsed_version).version


def _matching_version(entries: Sequence[IndexEntry], version: str) -> str | None:
    try:
        wanted = Version(version)
    except InvalidVersion:
        return None
    return next((e.version for e in entries if e.parsed_version == wanted), None)


def metadata_source(files: Sequence[IndexEntry]) -> IndexEntry | None:
    """The file of a release whose core metadata describes it: a wheel's if it has one."""
    with_metadata = (e for e in files if e.metadata_sha256)
    return min(with_metadata, key=lambda e: not e.filename.endswith(".whl"), default=None)


def _metadata_of(repository: Repository, files: Sequence[IndexEntry]) -> dict[str, Any]:
    """The parsed core metadata of the release (``metadata_source``)."""
    entry = metadata_source(files)
    if entry is None:
        return {}
    with repository.backend.open_file(entry.metadata_dist) as stream:
        return parse_metadata(stream.read(), entry.filename)


def _info(
    project: str,
    version: str,
    files: Sequence[IndexEntry],
    metadata: dict[str, Any],
    public_url: str,
) -> dict[str, Any]:
    info: dict[str, Any] = dict.fromkeys(INFO_FIELDS)
    info.update({key: metadata[key] for key in INFO_FIELDS if key in metadata})
    keywords = metadata.get("keywords")
    yanked = [e for e in files if e.yanked is not None]
    info.update(
        name=metadata.get("name", project),
        version=version,
        keywords=",".join(keywords) if keywords else None,
        requires_python=info["requires_python"] or files[0].requires_python,
        package_url=f"{public_url}/pypi/{project}/",
        project_url=f"{public_url}/pypi/{project}/",
        release_url=f"{public_url}/pypi/{project}/{version}/",
        yanked=len(yanked) == len(files),
        yanked_reason=yanked[0].yanked or None if len(yanked) == len(files) else None,
    )
    return info


def _file(entry: IndexEntry, base: str) -> dict[str, Any]:
    wheel = entry.filename.endswith(".whl")
    return {
        "comment_text": "",
        "digests": {
            "sha256": entry.sha256,
            "md5": entry.md5,
            "blake2b_256": entry.blake2b_256,
        },
        "downloads": -1,
        "filename": entry.filename,
        "has_sig": False,
        "md5_digest": entry.md5,
        "packagetype": "bdist_wheel" if wheel else "sdist",
        "python_version": entry.filename.split("-")[-3] if wheel else "source",
        "requires_python": entry.requires_python,
        "size": entry.size,
        "upload_time": entry.upload_time and entry.upload_time.strftime("%Y-%m-%dT%H:%M:%S"),
        "upload_time_iso_8601": upload_time(entry),
        "url": base + quote(entry.filename),
        "yanked": entry.yanked is not None,
        "yanked_reason": entry.yanked or None,
    }
