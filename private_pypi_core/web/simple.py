"""The Simple Repository API (PEP 503) and the legacy upload API, under /simple/."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import BinaryIO

import falcon
import falcon.asgi

from private_pypi_core.backend import Access
from private_pypi_core.dists import content_type, normalize_project
from private_pypi_core.errors import NotFound
from private_pypi_core.index import IndexEntry
from private_pypi_core.repository import Repository
from private_pypi_core.web import pages
from private_pypi_core.web.runtime import Runtime
from private_pypi_core.web.upload import receive_upload

DOWNLOAD_CHUNK_BYTES = 1 << 20
HTML = "text/html; charset=utf-8"


class Upload:
    """``POST /simple/`` (also ``/simple`` and ``/``): publish one file.

    Never redirects: twine and poetry abort on any 3xx for an upload.
    """

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        repository = await self.runtime.authorize(req, Access.WRITE)
        async with receive_upload(
            req, repository.config.max_file_bytes, self.runtime.temp_dir
        ) as upload:
            created = await self.runtime.run(repository.publish, upload)
        resp.content_type = falcon.MEDIA_TEXT
        filename = upload.entry.filename
        resp.text = f"Published {filename}\n" if created else f"{filename} is already stored\n"


class SimpleRoot(Upload):
    """``GET /simple/``: the projects of the repository the credential opens; POST uploads."""

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        repository = await self.runtime.authorize(req, Access.READ)
        resp.content_type = HTML
        resp.text = pages.root_page(repository.index.projects)

    async def on_get_bare(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """``GET /simple``: to ``/simple/``, where the page's relative links resolve."""
        raise falcon.HTTPMovedPermanently("/simple/")

    on_post_bare = Upload.on_post


class ProjectPage:
    """``GET /simple/<project>/``: the files of one project, or the extra index's page."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, project: str
    ) -> None:
        repository = await self.runtime.authorize(req, Access.READ)
        normalized = normalize_project(project)
        if normalized != project or not req.path.endswith("/"):
            raise falcon.HTTPMovedPermanently(f"/simple/{normalized}/")
        entries = repository.index.projects.get(normalized)
        if entries is None:
            extra_index_url = self.runtime.settings.extra_index_url
            if not extra_index_url:
                raise NotFound(f"No project named {normalized!r} in {repository.name!r}.")
            raise falcon.HTTPSeeOther(f"{extra_index_url.rstrip('/')}/{normalized}/")
        resp.content_type = HTML
        resp.text = pages.project_page(normalized, entries)


class FileDownload:
    """``GET /simple/<project>/<filename>``: a distribution file, streamed."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def on_head(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, project: str, filename: str
    ) -> None:
        _, entry = await self._find(req, project, filename)
        resp.content_type = content_type(filename)
        resp.content_length = entry.size

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, project: str, filename: str
    ) -> None:
        repository, entry = await self._find(req, project, filename)
        redirect = await self.runtime.run(repository.backend.download_url, entry.dist)
        if redirect is not None:
            raise falcon.HTTPFound(redirect)
        try:
            stream = await self.runtime.run(repository.backend.open_file, entry.dist)
        except FileNotFoundError:
            raise NotFound(f"{filename!r} is listed but no longer stored.") from None
        resp.content_type = content_type(filename)
        resp.content_length = entry.size
        resp.stream = self._chunks(stream)

    async def _find(
        self, req: falcon.asgi.Request, project: str, filename: str
    ) -> tuple[Repository, IndexEntry]:
        repository = await self.runtime.authorize(req, Access.READ)
        entry = repository.index.entries.get(filename)
        if entry is None or entry.project != normalize_project(project):
            raise NotFound(f"No file {filename!r} in project {project!r}.")
        return repository, entry

    async def _chunks(self, stream: BinaryIO) -> AsyncIterator[bytes]:
        try:
            while chunk := await self.runtime.run(stream.read, DOWNLOAD_CHUNK_BYTES):
                yield chunk
        finally:
            stream.close()
