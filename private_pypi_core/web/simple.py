"""The Simple Repository API (PEP 503, 691, 658) and the legacy upload API, under /simple/."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import BinaryIO

import falcon
import falcon.asgi

from private_pypi_core import metrics
from private_pypi_core.auth import Action
from private_pypi_core.backend import DistFile
from private_pypi_core.dists import content_type, normalize_project, validate_project
from private_pypi_core.errors import NotFound
from private_pypi_core.index import IndexEntry, PackageIndex
from private_pypi_core.metadata import COMPANION_SUFFIX
from private_pypi_core.repository import Repository
from private_pypi_core.web import pages
from private_pypi_core.web.conditional import accepts_gzip, not_modified
from private_pypi_core.web.negotiation import HTML_LEGACY, JSON_V1, choose_format
from private_pypi_core.web.page_cache import RenderedPage
from private_pypi_core.web.ranges import byte_range, skip
from private_pypi_core.web.redirects import plain
from private_pypi_core.web.runtime import Runtime
from private_pypi_core.web.upload import receive_upload

DOWNLOAD_CHUNK_BYTES = 1 << 20
METADATA_CONTENT_TYPE = "text/plain; charset=utf-8"


PAGE_CACHE_CONTROL = "private, max-age=0, must-revalidate"  # uploads show at once
FILE_CACHE_CONTROL = "private, max-age=31536000, immutable"  # a published file never changes


def _query(req: falcon.asgi.Request) -> str:
    """The query string to carry over a redirect (``?format=`` must survive it)."""
    return f"?{req.query_string}" if req.query_string else ""


def _negotiate(req: falcon.asgi.Request) -> str:
    return choose_format(req.get_header("Accept"), req.get_param("format"))


def _serve_page(
    req: falcon.asgi.Request, resp: falcon.asgi.Response, page: RenderedPage, media_type: str
) -> None:
    resp.content_type = f"{media_type}; charset=utf-8" if media_type == HTML_LEGACY else media_type
    resp.cache_control = [PAGE_CACHE_CONTROL]
    use_gzip = page.gzipped is not None and accepts_gzip(req)
    resp.etag = page.gzip_etag if use_gzip else page.etag
    if page.last_modified_header is not None:
        resp.set_header("Last-Modified", page.last_modified_header)
    if not_modified(req, page.last_modified, page.etag, page.gzip_etag):
        resp.status = falcon.HTTP_304
        return
    if use_gzip:
        resp.set_header("Content-Encoding", "gzip")
        resp.data = page.gzipped
    else:
        resp.data = page.body


class Upload:
    """``POST /simple/`` (also ``/simple`` and ``/``): publish one file.

    Never redirects: twine and poetry abort on any 3xx for an upload.
    """

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        repository = await self.runtime.authorize(req, Action.UPLOAD)
        try:
            async with receive_upload(
                req,
                repository.config.max_file_bytes,
                self.runtime.temp_dir,
                publisher=req.context.grant.publisher,
            ) as upload:
                self.runtime.check_project(req, Action.UPLOAD, upload.entry.project)
                created = await self.runtime.run(repository.publish, upload)
        except Exception as error:
            metrics.record_upload(repository.name, metrics.upload_outcome(error))
            raise
        metrics.record_upload(repository.name, "stored" if created else "existing")
        entry = upload.entry
        self.runtime.record(
            req,
            repository,
            "upload" if created else "upload again",
            project=entry.project,
            version=entry.version,
            filename=entry.filename,
            sha256=entry.sha256,
        )
        resp.content_type = falcon.MEDIA_TEXT
        filename = upload.entry.filename
        resp.text = f"Published {filename}\n" if created else f"{filename} is already stored\n"


class SimpleRoot(Upload):
    """``GET /simple/``: the projects of the repository the credential opens; POST uploads."""

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        repository = await self.runtime.authorize(req, Action.READ)
        media_type = _negotiate(req)

        def render(index: PackageIndex) -> bytes:
            if media_type == JSON_V1:
                return pages.root_json(index.projects)
            return pages.root_page(index.projects).encode()

        page = self.runtime.pages(repository).page(repository, (None, media_type), render)
        _serve_page(req, resp, page, media_type)

    async def on_get_bare(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """``GET /simple``: to ``/simple/``, where the page's relative links resolve."""
        raise falcon.HTTPMovedPermanently("/simple/" + _query(req), headers=plain())

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
        repository = await self.runtime.authorize(req, Action.READ)
        normalized = validate_project(project)  # also keeps the redirects' Location clean
        if normalized != project or not req.path.endswith("/"):
            raise falcon.HTTPMovedPermanently(
                f"/simple/{normalized}/{_query(req)}", headers=plain()
            )
        if normalized not in repository.index.projects:
            extra_index_url = self.runtime.settings.extra_index_url
            if not extra_index_url:
                raise NotFound(f"No project named {normalized!r} in {repository.name!r}.")
            raise falcon.HTTPSeeOther(
                f"{extra_index_url.rstrip('/')}/{normalized}/", headers=plain()
            )
        media_type = _negotiate(req)

        def render(index: PackageIndex) -> bytes:
            entries = index.projects[normalized]
            tracks, alternates = pages.pep708_urls(repository.config, normalized)
            status = index.status_of(normalized)
            provenances = pages.provenance_urls(self.runtime.settings.public_url, entries)
            if media_type == JSON_V1:
                return pages.project_json(
                    normalized, entries, tracks, alternates, None, status, provenances
                )
            return pages.project_page(
                normalized, entries, tracks, alternates, None, status, provenances
            ).encode()

        page = self.runtime.pages(repository).page(repository, (normalized, media_type), render)
        _serve_page(req, resp, page, media_type)


class FileDownload:
    """``GET /simple/<project>/<filename>``: a distribution file, streamed or redirected to the
    store; ``<filename>.metadata`` is its core metadata (PEP 658)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def on_head(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, project: str, filename: str
    ) -> None:
        _, entry, is_metadata = await self._find(req, project, filename)
        _file_headers(resp, entry, is_metadata)

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, project: str, filename: str
    ) -> None:
        repository, entry, is_metadata = await self._find(req, project, filename)
        etag = _file_headers(resp, entry, is_metadata)
        if not_modified(req, entry.upload_time, etag):
            resp.status = falcon.HTTP_304
            return
        if is_metadata:
            resp.data = await self.runtime.run(read_stored, repository, entry.metadata_dist)
            return
        redirect = await self.runtime.run(repository.backend.download_url, entry.dist)
        if redirect is not None:
            raise falcon.HTTPFound(redirect, headers=plain())
        first, last = 0, entry.size - 1
        requested = byte_range(req, entry.size, etag)
        if requested is not None:
            first, last = requested
            resp.status = falcon.HTTP_206
            resp.content_range = (first, last, entry.size)
        try:
            stream = await self.runtime.run(repository.backend.open_file, entry.dist)
        except FileNotFoundError:
            raise NotFound(f"{filename!r} is listed but no longer stored.") from None
        resp.content_length = last - first + 1
        resp.stream = self._chunks(stream, first, last - first + 1)

    async def _find(
        self, req: falcon.asgi.Request, project: str, filename: str
    ) -> tuple[Repository, IndexEntry, bool]:
        repository = await self.runtime.authorize(req, Action.READ)
        is_metadata = filename.endswith(COMPANION_SUFFIX)
        index = repository.index
        entry = index.entries.get(filename.removesuffix(COMPANION_SUFFIX))
        if (
            entry is None
            or entry.project != normalize_project(project)
            or (is_metadata and not entry.metadata_sha256)
            or not index.status_of(entry.project).serves_files  # PEP 792: quarantined
        ):
            raise NotFound(f"No file {filename!r} in project {project!r}.")
        return repository, entry, is_metadata

    async def _chunks(self, stream: BinaryIO, offset: int, length: int) -> AsyncIterator[bytes]:
        try:
            if offset:
                await self.runtime.run(skip, stream, offset)
            while length > 0:
                chunk = await self.runtime.run(stream.read, min(DOWNLOAD_CHUNK_BYTES, length))
                if not chunk:
                    break
                length -= len(chunk)
                yield chunk
        finally:
            stream.close()


def _file_headers(resp: falcon.asgi.Response, entry: IndexEntry, is_metadata: bool) -> str:
    """Set the headers of a file or metadata response; its ETag."""
    if is_metadata:
        resp.content_type = METADATA_CONTENT_TYPE
        etag = f'"{entry.metadata_sha256}"'
    else:
        resp.content_type = content_type(entry.filename)
        resp.content_length = entry.size
        resp.accept_ranges = "bytes"
        etag = f'"{entry.sha256}"'
    resp.etag = etag
    resp.last_modified = entry.upload_time
    resp.cache_control = [FILE_CACHE_CONTROL]
    return etag


def read_stored(repository: Repository, dist: DistFile) -> bytes:
    """A small stored file (core metadata, attestations), whole."""
    try:
        with repository.backend.open_file(dist) as stream:
            return stream.read()
    except FileNotFoundError:
        raise NotFound(f"{dist.filename!r} is listed but no longer stored.") from None
