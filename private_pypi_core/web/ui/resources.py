"""The UI's resources: the home page (a repository's projects), a project's page, the
stylesheet. Each reads with ``Runtime.authorize(req, Action.READ)``, as the simple pages do."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

import falcon
import falcon.asgi

from private_pypi_core import outages
from private_pypi_core.auth import ANONYMOUS_GRANT, SESSION_GRANT, Action
from private_pypi_core.dists import validate_project
from private_pypi_core.errors import BadRequest, Unauthorized, UserError
from private_pypi_core.index import IndexEntry
from private_pypi_core.repository import Repository
from private_pypi_core.web.conditional import not_modified
from private_pypi_core.web.downloads import patiently, refreshed
from private_pypi_core.web.json_api import latest_version, metadata_source
from private_pypi_core.web.redirects import plain
from private_pypi_core.web.runtime import Runtime
from private_pypi_core.web.simple import Upload, read_stored
from private_pypi_core.web.ui.description import Description, DescriptionCache
from private_pypi_core.web.ui.render import STYLESHEET, serve_page
from private_pypi_core.web.ui.views import (
    SORTS,
    file_url,
    install_commands,
    list_projects,
    releases,
)

STYLESHEET_CACHE_CONTROL = ["public", "max-age=604800"]  # its URL changes with its content


async def reader(runtime: Runtime, req: falcon.asgi.Request) -> Repository | None:
    """The repository the request may read; ``None`` when it carries no credential at all (no
    basic auth, no live session, and no repository reads anonymously). A credential that is
    wrong is answered as on the index: ``Unauthorized``."""
    try:
        return await runtime.authorize(req, Action.READ)
    except Unauthorized:
        if req.get_header("Authorization") is not None:
            raise
        return None


def frame(req: falcon.asgi.Request, repository: Repository | None) -> dict[str, Any]:
    """What the header of every page shows: the repository, and a logout button for a browser
    session (a login link for anyone else without a credential)."""
    grant = req.context.grant if repository is not None else None
    return {
        "repository": repository.name if repository is not None else None,
        "signed_in": grant is SESSION_GRANT,
        "may_log_in": repository is None or grant is ANONYMOUS_GRANT,
    }


class Home(Upload):
    """``GET /``: the projects of the repository the credential opens (``?q=``, ``?sort=``,
    ``?page=``), or the way to log in; ``POST /`` uploads, as ``POST /simple/`` does."""

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        repository = await reader(self.runtime, req)
        if repository is None:
            serve_page(resp, "welcome.html", **frame(req, None))
            return
        sort = req.get_param("sort") or SORTS[0]
        if sort not in SORTS:
            raise BadRequest(f"?sort= takes one of {', '.join(SORTS)}.")
        page = req.get_param_as_int("page", min_value=1) or 1
        listing = list_projects(repository.index, req.get_param("q") or "", sort, page)
        serve_page(resp, "home.html", listing=listing, sorts=SORTS, **frame(req, repository))


class ProjectView:
    """``GET /project/<project>/``: a project's status, install commands, description, and
    versions with their files, newest first (none for a quarantined project)."""

    def __init__(self, runtime: Runtime, descriptions: DescriptionCache) -> None:
        self.runtime = runtime
        self.descriptions = descriptions

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, project: str
    ) -> None:
        repository = await reader(self.runtime, req)
        if repository is None:
            login = "/login/?" + urlencode({"next": req.path})
            raise falcon.HTTPSeeOther(login, headers=plain())
        normalized = validate_project(project)
        if normalized != project or not req.path.endswith("/"):
            raise falcon.HTTPMovedPermanently(f"/project/{normalized}/", headers=plain())
        await refreshed(self.runtime, repository, normalized, resp)
        index = repository.index
        entries = index.files_of(normalized)
        if not entries:
            resp.status = falcon.HTTP_404
            serve_page(resp, "missing.html", project=normalized, **frame(req, repository))
            return
        status = index.status_of(normalized)
        latest = latest_version(entries) or entries[0].version
        description = None
        install = []
        if status.serves_files:
            description = await self._description(repository, entries, latest)
            public_url = self.runtime.settings.public_url
            install = install_commands(normalized, latest, repository.name, public_url)
        serve_page(
            resp,
            "project.html",
            project=normalized,
            status=status,
            latest=latest,
            releases=releases(entries, status),
            description=description,
            install=install,
            file_url=file_url,
            **frame(req, repository),
        )

    async def _description(
        self, repository: Repository, entries: Sequence[IndexEntry], version: str
    ) -> Description | None:
        """The description of ``version``; ``None`` when it has no core metadata or the store
        cannot give it now (the page shows without it)."""
        source = metadata_source([entry for entry in entries if entry.version == version])
        if source is None or source.metadata_sha256 is None:
            return None
        metadata = source.metadata_dist
        try:
            return await self.descriptions.describe(
                source.metadata_sha256,
                lambda: patiently(
                    self.runtime, repository, metadata.project, read_stored, repository, metadata
                ),
                source.filename,
            )
        except OSError as error:
            outages.store_failed(repository, error)
            return None
        except UserError:  # listed but no longer stored
            return None


class StylesheetFile:
    """``GET /static/style.css``: the one stylesheet, to anyone (it holds nothing private)."""

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.content_type = "text/css; charset=utf-8"
        resp.cache_control = STYLESHEET_CACHE_CONTROL
        resp.etag = STYLESHEET.etag
        if not_modified(req, None, STYLESHEET.etag):
            resp.status = falcon.HTTP_304
            return
        resp.data = STYLESHEET.body
