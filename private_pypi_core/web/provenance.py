"""PEP 740 provenance: ``/integrity/<project>/<version>/<filename>/provenance``, where pypi.org
serves it (the links of the simple pages advertise it: ``pages.provenance_urls``)."""

from __future__ import annotations

import hashlib
import json

import falcon
import falcon.asgi
from packaging.version import InvalidVersion, Version

from private_pypi_core.auth import Action
from private_pypi_core.dists import normalize_project
from private_pypi_core.errors import NotFound
from private_pypi_core.provenance import provenance
from private_pypi_core.web.conditional import not_modified
from private_pypi_core.web.downloads import patiently
from private_pypi_core.web.runtime import Runtime
from private_pypi_core.web.simple import PAGE_CACHE_CONTROL, read_stored

INTEGRITY_JSON = "application/vnd.pypi.integrity.v1+json"


class Provenance:
    """The provenance object of a file uploaded with attestations: its attestations, under
    the trusted publisher that uploaded it (``private_pypi_core.provenance``)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def on_get(
        self,
        req: falcon.asgi.Request,
        resp: falcon.asgi.Response,
        project: str,
        version: str,
        filename: str,
    ) -> None:
        repository = await self.runtime.authorize(req, Action.READ)
        index = repository.index
        entry = index.entry(filename, normalize_project(project))
        if (
            entry is None
            or entry.project != normalize_project(project)
            or not _same_version(version, entry.version)
            or not entry.attestations_sha256
            or not index.status_of(entry.project).serves_files
        ):
            raise NotFound(f"No provenance for {filename!r} in project {project!r}.")
        attestations = await patiently(
            self.runtime,
            repository,
            entry.project,
            read_stored,
            repository,
            entry.attestations_dist,
        )
        body = json.dumps(provenance(attestations, entry.publisher)).encode()
        resp.content_type = INTEGRITY_JSON
        resp.cache_control = [PAGE_CACHE_CONTROL]  # PEP 740: a provenance may change
        resp.etag = etag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'
        if not_modified(req, None, etag):
            resp.status = falcon.HTTP_304
            return
        resp.data = body


def _same_version(text: str, version: str) -> bool:
    try:
        return text == version or Version(text) == Version(version)
    except InvalidVersion:
        return False
