"""The Simple Repository API (PEP 503, 691, 658) and the legacy upload API, under /simple/."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import BinaryIO

import falcon
import falcon.asgi

from private_pypi_core.backend import Access, BackendConfig, DistFile
from private_pypi_core.dists import content_type, normalize_project
from private_pypi_core.errors import NotFound
from private_pypi_core.index import IndexEntry
from private_pypi_core.metadata import COMPANION_SUFFIX
from private_pypi_core.repository import Repository
from private_pypi_core.web import pages
from private_pypi_core.web.negotiation import HTML_LEGACY, JSON_V1, choose_format
from private_pypi_core.web.runtime import Runtime
from private_pypi_core.web.upload import receive_upload

DOWNLOAD_CHUNK_BYTES = 1 << 20
METADATA_CONTENT_TYPE = "text/plain; charset=utf-8"


def _negotiate(req: falcon.asgi.Request, resp: falcon.asgi.Response) -> str:
    chosen = choose_format(req.get_header("Accept"), req.get_param("format"))
    resp.content_type = f"{chosen}; charset=utf-8" if chosen == HTML_LEGACY else chosen
    return chosen


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
        chosen = _negotiate(req, resp)
        projects = repository.index.projects
        if chosen == JSON_V1:
            resp.data = pages.root_json(projects)
        else:
            resp.text = pages.root_page(projects)

    async def on_get_bare(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """``GET /simple``: to ``/simple/``, where the page's relative links resolve."""
        raise falcon.HTTPMovedPermanently("/simple/")

    on_post_bare = Upload.on_post


class ProjectPage:
    """``GET /simple/<project>/``: the files of one project, or the extra index's page.

    A project this repository has is never answered from the extra index, whatever the extra
    index holds under that name (no dependency confusion).
    """

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
        chosen = _negotiate(req, resp)
        tracks, alternates = _pep708(repository.config, normalized)
        if chosen == JSON_V1:
            resp.data = pages.project_json(normalized, entries, tracks, alternates)
        else:
            resp.text = pages.project_page(normalized, entries, tracks, alternates)


def _pep708(config: BackendConfig, project: str) -> tuple[list[str], list[str]]:
    def lookup(table: dict[str, list[str]]) -> list[str]:
        return next(
            (urls for name, urls in table.items() if normalize_project(name) == project), []
        )

    return lookup(config.tracks), lookup(config.alternate_locations)


class FileDownload:
    """``GET /simple/<project>/<filename>``: a distribution file, streamed or redirected to the
    store; ``<filename>.metadata`` is its core metadata (PEP 658)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def on_head(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, project: str, filename: str
    ) -> None:
        _, entry, is_metadata = await self._find(req, project, filename)
        if not is_metadata:
            resp.content_type = content_type(filename)
            resp.content_length = entry.size

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, project: str, filename: str
    ) -> None:
        repository, entry, is_metadata = await self._find(req, project, filename)
        if is_metadata:
            resp.content_type = METADATA_CONTENT_TYPE
            resp.data = await self.runtime.run(_read_all, repository, entry.metadata_dist)
            return
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
    ) -> tuple[Repository, IndexEntry, bool]:
        repository = await self.runtime.authorize(req, Access.READ)
        is_metadata = filename.endswith(COMPANION_SUFFIX)
        entry = repository.index.entries.get(filename.removesuffix(COMPANION_SUFFIX))
        if (
            entry is None
            or entry.project != normalize_project(project)
            or (is_metadata and not entry.metadata_sha256)
        ):
            raise NotFound(f"No file {filename!r} in project {project!r}.")
        return repository, entry, is_metadata

    async def _chunks(self, stream: BinaryIO) -> AsyncIterator[bytes]:
        try:
            while chunk := await self.runtime.run(stream.read, DOWNLOAD_CHUNK_BYTES):
                yield chunk
        finally:
            stream.close()


def _read_all(repository: Repository, dist: DistFile) -> bytes:
    try:
        with repository.backend.open_file(dist) as stream:
            return stream.read()
    except FileNotFoundError:
        raise NotFound(f"{dist.filename!r} is listed but no longer stored.") from None
