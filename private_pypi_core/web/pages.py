"""The simple pages (PEP 503 HTML, PEP 691 JSON). (Pages for people: ``web/ui/``.)

Every page states API version 1.4 (PEP 629), with what each version added: every file carries
its size and upload time, every project page its versions (1.1, PEP 700), PEP 708's tracks and
alternate locations where configured (1.2), a file's provenance URL where it has attestations
(1.3, PEP 740) and the project's status (1.4, PEP 792: a quarantined project lists no file).
Core metadata is advertised only where it is served (PEP 658, both spellings of PEP 714 in
HTML, never ``dist-info-metadata`` in JSON).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC
from html import escape
from typing import Any
from urllib.parse import quote

from private_pypi_core.backend import BackendConfig
from private_pypi_core.dists import urls_for
from private_pypi_core.index import ACTIVE, IndexEntry, ProjectStatus

API_VERSION = "1.4"


def _html(title: str, body: str, head: str = "") -> str:
    return (
        "<!DOCTYPE html>\n<html>\n  <head>\n"
        f'    <meta name="pypi:repository-version" content="{API_VERSION}">\n'
        f"{head}"
        f"    <title>{escape(title)}</title>\n  </head>\n  <body>\n"
        f"{body}  </body>\n</html>\n"
    )


def root_page(projects: Iterable[str]) -> str:
    links = "".join(f'    <a href="{quote(p)}/">{escape(p)}</a><br/>\n' for p in projects)
    return _html("Simple index", links)


def root_json(projects: Iterable[str]) -> bytes:
    return _json(
        {"meta": {"api-version": API_VERSION}, "projects": [{"name": p} for p in projects]}
    )


def project_page(
    project: str,
    entries: Iterable[IndexEntry],
    tracks: Sequence[str] = (),
    alternate_locations: Sequence[str] = (),
    file_urls: Mapping[str, str] | None = None,
    status: ProjectStatus = ACTIVE,
    provenance_urls: Mapping[str, str] | None = None,
) -> str:
    """The PEP 503 page; ``file_urls``: each file's URL by filename (default: beside the page);
    ``provenance_urls``: the URL of each file's provenance that has one, by filename."""
    meta = [("pypi:project-status", status.status)]
    if status.reason:
        meta.append(("pypi:project-status-reason", status.reason))
    meta += [("pypi:tracks", url) for url in tracks]
    meta += [("pypi:alternate-locations", url) for url in alternate_locations]
    head = "".join(
        f'    <meta name="{name}" content="{escape(content)}">\n' for name, content in meta
    )
    links = []
    for entry in entries if status.serves_files else ():
        attributes = f'href="{escape(_file_url(entry, file_urls))}#sha256={entry.sha256}"'
        if entry.requires_python:
            attributes += f' data-requires-python="{escape(entry.requires_python)}"'
        if entry.metadata_sha256:
            digest = f"sha256={entry.metadata_sha256}"
            attributes += f' data-core-metadata="{digest}" data-dist-info-metadata="{digest}"'
        if entry.yanked is not None:
            attributes += f' data-yanked="{escape(entry.yanked)}"'
        if provenance_urls and entry.filename in provenance_urls:
            attributes += f' data-provenance="{escape(provenance_urls[entry.filename])}"'
        links.append(f"    <a {attributes}>{escape(entry.filename)}</a><br/>\n")
    body = f"    <h1>Links for {escape(project)}</h1>\n" + "".join(links)
    return _html(f"Links for {project}", body, head)


def project_json(
    project: str,
    entries: Sequence[IndexEntry],
    tracks: Sequence[str] = (),
    alternate_locations: Sequence[str] = (),
    file_urls: Mapping[str, str] | None = None,
    status: ProjectStatus = ACTIVE,
    provenance_urls: Mapping[str, str] | None = None,
) -> bytes:
    """The PEP 691 page; ``file_urls``, ``provenance_urls`` as for ``project_page``."""
    page: dict[str, Any] = {
        "meta": {"api-version": API_VERSION},
        "name": project,
        "project-status": {"status": status.status},
        "versions": _versions(entries),
        "files": [
            _file_json(entry, _file_url(entry, file_urls), (provenance_urls or {}))
            for entry in (entries if status.serves_files else ())
        ],
    }
    if status.reason:
        page["project-status"]["reason"] = status.reason
    if tracks:
        page["meta"]["tracks"] = list(tracks)
    if alternate_locations:
        page["alternate-locations"] = list(alternate_locations)
    return _json(page)


def _file_url(entry: IndexEntry, urls: Mapping[str, str] | None) -> str:
    return quote(entry.filename) if urls is None else urls[entry.filename]


def _file_json(entry: IndexEntry, url: str, provenance_urls: Mapping[str, str]) -> dict[str, Any]:
    file: dict[str, Any] = {
        "filename": entry.filename,
        "url": url,
        "hashes": {"sha256": entry.sha256},
        "yanked": entry.yanked or (entry.yanked is not None),
        "core-metadata": {"sha256": entry.metadata_sha256} if entry.metadata_sha256 else False,
        "size": entry.size,
        "provenance": provenance_urls.get(entry.filename),
    }
    if entry.upload_time is not None:  # optional in PEP 700: a proxied file may have none
        file["upload-time"] = upload_time(entry)
    if entry.requires_python:
        file["requires-python"] = entry.requires_python
    return file


def pep708_urls(config: BackendConfig, project: str) -> tuple[list[str], list[str]]:
    """The index pages ``project`` tracks and its alternate locations (PEP 708), as the
    repository's config names them (under any spelling of the project name)."""
    return urls_for(config.tracks, project), urls_for(config.alternate_locations, project)


def provenance_urls(public_url: str, entries: Iterable[IndexEntry]) -> dict[str, str]:
    """The provenance URL of each file with attestations, by filename. None without the
    server's public URL: the spec wants a fully-qualified URL (pypi-simple refuses any other),
    and the server never builds one from the Host header, which the client chooses."""
    if not public_url:
        return {}
    return {
        entry.filename: (
            f"{public_url}/integrity/{quote(entry.project)}/{quote(entry.version)}/"
            f"{quote(entry.filename)}/provenance"
        )
        for entry in entries
        if entry.attestations_sha256
    }


def upload_time(entry: IndexEntry) -> str | None:
    """ISO 8601 in UTC with microseconds and ``Z``, as PEP 700 spells it."""
    if entry.upload_time is None:
        return None
    return entry.upload_time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _versions(entries: Sequence[IndexEntry]) -> list[str]:
    parsed = {entry.version: entry.parsed_version for entry in entries}
    return sorted(parsed, key=parsed.__getitem__)


def _json(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()
