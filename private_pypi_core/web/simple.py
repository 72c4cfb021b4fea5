"""The Simple Repository API (PEP 503, 691, 658) and the legacy upload API, under /simple/."""

from __future__ import annotations

import falcon
import falcon.asgi

from private_pypi_core import metrics
from private_pypi_core.auth import Action
from private_pypi_core.backend import DistFile
from private_pypi_core.dists import normalize_project, validate_project
from private_pypi_core.errors import NotFound
from private_pypi_core.index import IndexEntry, PackageIndex
from private_pypi_core.metadata import COMPANION_SUFFIX
from private_pypi_core.repository import Repository
from private_pypi_core.web import pages
from private_pypi_core.web.conditional import accepts_gzip, not_modified
from private_pypi_core.web.downloads import (
    file_etag,
    file_headers,
    open_part,
    patiently,
    refreshed,
)
from private_pypi_core.web.negotiation import HTML_LEGACY, JSON_V1, choose_format
from private_pypi_core.web.page_cache import RenderedPage
from private_pypi_core.web.ranges import byte_range
from private_pypi_core.web.redirects import plain
from private_pypi_core.web.runtime import Runtime
from private_pypi_core.web.upload import receive_upload

PAGE_CACHE_CONTROL = "private, max-age=0, must-revalidate"  # uploads show at once
# On every simple page (PEP 691), redirects and errors included (``app.VaryOnAccept``), so
# caches keep the HTML and JSON forms (and their gzip forms) apart.
PAGE_VARY = "Accept, Accept-Encoding"


def _query(req: falcon.asgi.Request) -> str:
    """The query string to carry over a redirect (``?format=`` must survive it)."""
    return f"?{req.query_string}" if req.query_string else ""


def _negotiate(req: falcon.asgi.Request) -> str:
    return choose_format(req.get_header("Accept"), req.get_param("format"))


def root_page(runtime: Runtime, repository: Repository, media_type: str) -> RenderedPage:
    """``/simple/`` of ``repository`` in ``media_type``, rendered once per index change."""

    def render(index: PackageIndex) -> bytes:
        if media_type == JSON_V1:
            return pages.root_json(index.projects)
        return pages.root_page(index.projects).encode()

    return runtime.pages(repository).page(repository, (None, media_type), render)


def project_page(
    runtime: Runtime, repository: Repository, project: str, media_type: str
) -> RenderedPage:
    """``/simple/<project>/`` of a normalised project the repository lists, in
    ``media_type``, rendered once per change of its files or status."""

    def render(index: PackageIndex) -> bytes:
        entries = index.files_of(project) or []
        tracks, alternates = pages.pep708_urls(repository.config, project)
        status = index.status_of(project)
        provenances = pages.provenance_urls(runtime.settings.public_url, entries)
        if media_type == JSON_V1:
            return pages.project_json(
                project, entries, tracks, alternates, None, status, provenances
            )
        return pages.project_page(
            project, entries, tracks, alternates, None, status, provenances
        ).encode()

    return runtime.pages(repository).page(repository, (project, media_type), render)


def page_headers(
    page: RenderedPage, media_type: str, use_gzip: bool, current: bool
) -> list[tuple[str, str]]:
    """The headers of a page's answer (a 304 when the client's copy is ``current``), but for
    Vary and Content-Length."""
    content_type = f"{media_type}; charset=utf-8" if media_type == HTML_LEGACY else media_type
    headers = [
        ("Content-Type", content_type),
        ("Cache-Control", PAGE_CACHE_CONTROL),
        ("ETag", page.gzip_etag if use_gzip else page.etag),
    ]
    if page.last_modified_header is not None:
        headers.append(("Last-Modified", page.last_modified_header))
    if use_gzip and not current:
        headers.append(("Content-Encoding", "gzip"))
    return headers


def _serve_page(
    req: falcon.asgi.Request, resp: falcon.asgi.Response, page: RenderedPage, media_type: str
) -> None:
    use_gzip = page.gzipped is not None and accepts_gzip(req)
    current = not_modified(req, page.last_modified, page.etag, page.gzip_etag)
    resp.set_headers(page_headers(page, media_type, use_gzip, current))
    if current:
        resp.status = falcon.HTTP_304
    elif use_gzip:
        resp.data = page.gzipped
    else:
        resp.data = page.body


def find_file(
    repository: Repository, project: str, filename: str
) -> tuple[IndexEntry, bool] | None:
    """The entry of a file (or of the file whose core metadata ``filename`` names: then
    ``True``) that ``repository`` serves under ``project``, as the URL spells them."""
    is_metadata = filename.endswith(COMPANION_SUFFIX)
    index = repository.index
    entry = index.entry(filename.removesuffix(COMPANION_SUFFIX), normalize_project(project))
    if (
        entry is None
        or entry.project != normalize_project(project)
        or (is_metadata and not entry.metadata_sha256)
        or not index.status_of(entry.project).serves_files  # PEP 792: quarantined
    ):
        return None
    return entry, is_metadata


class Upload:
    """``POST /simple/`` (also ``/simple`` and ``/``): publish one file.

    Never redirects: twine and poetry abort on any 3xx for an upload.
    """

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        repository = await self.runtime.authorize(req, Action.UPLOAD)
        repository.check_uploads()  # before the body is read
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
        _serve_page(req, resp, root_page(self.runtime, repository, media_type), media_type)

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
        await refreshed(self.runtime, repository, normalized, resp)
        if repository.index.files_of(normalized) is None:
            extra_index_url = self.runtime.settings.extra_index_url
            if not extra_index_url or repository.waits_on_upstream(normalized):
                raise NotFound(f"No project named {normalized!r} in {repository.name!r}.")
            raise falcon.HTTPSeeOther(
                f"{extra_index_url.rstrip('/')}/{normalized}/", headers=plain()
            )
        media_type = _negotiate(req)
        page = project_page(self.runtime, repository, normalized, media_type)
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
        resp.set_headers(file_headers(entry, is_metadata))

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, project: str, filename: str
    ) -> None:
        repository, entry, is_metadata = await self._find(req, project, filename)
        resp.set_headers(file_headers(entry, is_metadata))
        etag = file_etag(entry, is_metadata)
        if not_modified(req, entry.upload_time, etag):
            resp.status = falcon.HTTP_304
            # No Content-Length on a 304: uvicorn would wait for that many bytes of body.
            resp.delete_header("Content-Length")
            return
        if is_metadata:
            resp.data = await patiently(
                self.runtime,
                repository,
                entry.project,
                read_stored,
                repository,
                entry.metadata_dist,
            )
            return
        redirect = await self.runtime.run(repository.backend.download_url, entry.dist)
        if redirect is not None:
            raise falcon.HTTPFound(redirect, headers=plain())
        first, last = 0, entry.size - 1
        requested = byte_range(req, entry.size, etag)
        if requested is not None:
            if entry.url is not None:  # a part of a proxied file: the whole file cached first
                await patiently(
                    self.runtime, repository, entry.project, repository.cache_file, entry.dist
                )
            first, last = requested
            resp.status = falcon.HTTP_206
            resp.content_range = (first, last, entry.size)
        part = await open_part(self.runtime, repository, entry.dist, first, last - first + 1)
        resp.content_length = part.length
        resp.stream = part.chunks()

    async def _find(
        self, req: falcon.asgi.Request, project: str, filename: str
    ) -> tuple[Repository, IndexEntry, bool]:
        repository = await self.runtime.authorize(req, Action.READ)
        found = find_file(repository, project, filename)
        if found is not None and not found[0].size and found[0].url is not None:
            # A proxied file whose upstream gave no size: fetched first, so it is listed.
            await patiently(self.runtime, repository, project, repository.cache_file, found[0].dist)
            found = find_file(repository, project, filename)
        if found is None:
            raise NotFound(f"No file {filename!r} in project {project!r}.")
        return repository, *found


def read_stored(repository: Repository, dist: DistFile) -> bytes:
    """A small stored file (core metadata, attestations), whole."""
    try:
        with repository.backend.open_file(dist) as stream:
            return stream.read()
    except FileNotFoundError:
        raise NotFound(f"{dist.filename!r} is listed but no longer stored.") from None
