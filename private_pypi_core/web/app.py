"""Wires the Falcon ASGI app: routes, error handling and the index sync task; and what a
worker serves: that app behind the fast path, watched for the access log and metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

import falcon
import falcon.asgi
from falcon.media.multipart import MultipartFormHandler, MultipartParseOptions

from private_pypi_core import metrics, outages
from private_pypi_core.errors import StorageUnavailable, UserError
from private_pypi_core.oidc import TokenRefused, TrustedPublishing
from private_pypi_core.state import ServerSettings
from private_pypi_core.web import fast_path, oidc
from private_pypi_core.web.admin import IndexMtime, Initialize
from private_pypi_core.web.cross_site import BrowserGuard
from private_pypi_core.web.health import Healthz, Readyz
from private_pypi_core.web.json_api import ProjectJson
from private_pypi_core.web.manage import Yank
from private_pypi_core.web.metrics import MetricsListener, MetricsPage
from private_pypi_core.web.observe import Annotate, ASGIApp, Watched
from private_pypi_core.web.provenance import Provenance
from private_pypi_core.web.runtime import Runtime
from private_pypi_core.web.session import Login, Logout
from private_pypi_core.web.simple import PAGE_VARY, FileDownload, ProjectPage, SimpleRoot
from private_pypi_core.web.status import Status
from private_pypi_core.web.tokens import RevokeToken, Tokens
from private_pypi_core.web.ui.description import DescriptionCache
from private_pypi_core.web.ui.resources import Home, ProjectView, StylesheetFile

log = logging.getLogger(__name__)

# twine sends one form part per classifier and per requirement.
MAX_FORM_PARTS = 4096


def create_app(
    settings: ServerSettings, runtime: Runtime | None = None
) -> falcon.asgi.App[Any, Any]:
    """The Falcon app; ``runtime``, when given, is the one the worker's fast path shares."""
    runtime = runtime or Runtime(settings)
    middleware: list[Any] = [
        BrowserGuard(settings.public_url),
        IndexSync(runtime),
        VaryOnAccept(),
        Annotate(),
    ]
    if settings.metrics is not None and settings.metrics.bind is not None:
        # First: nothing else of the app runs for a request to the metrics listener.
        middleware.insert(0, MetricsListener(runtime, settings.metrics.bind[1]))
    app = falcon.asgi.App(middleware=middleware)
    app.req_options.media_handlers[falcon.MEDIA_MULTIPART] = _multipart_handler()

    simple_root = SimpleRoot(runtime)
    app.add_route("/simple/", simple_root)
    app.add_route("/simple", simple_root, suffix="bare")
    app.add_route("/", Home(runtime))  # the web UI's home; POST uploads
    app.add_route("/simple/{project}", ProjectPage(runtime))
    app.add_route("/simple/{project}/", ProjectPage(runtime))
    app.add_route("/simple/{project}/{filename}", FileDownload(runtime))
    project_json = ProjectJson(runtime)
    app.add_route("/pypi/{project}/json", project_json)
    app.add_route("/pypi/{project}/{version}/json", project_json, suffix="version")
    app.add_route("/integrity/{project}/{version}/{filename}/provenance", Provenance(runtime))
    project_view = ProjectView(runtime, DescriptionCache())
    app.add_route("/project/{project}", project_view)
    app.add_route("/project/{project}/", project_view)
    app.add_route("/static/style.css", StylesheetFile())
    app.add_route("/healthz", Healthz())
    app.add_route("/readyz", Readyz(runtime))
    if settings.metrics is not None and settings.metrics.secret:
        app.add_route("/metrics", MetricsPage(runtime, settings.metrics.secret))
    for path, resource in [
        ("/login", Login(runtime)),
        ("/logout", Logout(runtime)),
        ("/index_mtime", IndexMtime(runtime)),
        ("/initialize", Initialize(runtime)),
        ("/yank", Yank(runtime, yank=True)),
        ("/unyank", Yank(runtime, yank=False)),
        ("/_/tokens", Tokens(runtime)),
        ("/_/tokens/revoke", RevokeToken(runtime)),
        ("/_/status", Status(runtime)),
        ("/_/oidc/audience", oidc.Audience(runtime)),
        ("/_/oidc/mint-token", oidc.MintToken(runtime, TrustedPublishing(settings.oidc_audience))),
        ("/_/oidc/burn-token", oidc.BurnToken(runtime)),
    ]:
        app.add_route(path, resource)
        app.add_route(f"{path}/", resource)

    app.add_error_handler(OSError, _storage_error)
    app.add_error_handler(UserError, _user_error)
    app.add_error_handler(TokenRefused, oidc.refused)  # pypi.org's JSON, not plain text
    app.set_error_serializer(_plain_text_error)
    return app


def serve_app(settings: ServerSettings, access_log: logging.Logger | None) -> ASGIApp:
    """What a worker serves: the app behind the fast path (``fast_path``), watched when
    anything is to be written (``access_log``) or counted (``settings.metrics``); as it is, at
    full speed, when nothing is."""
    if settings.metrics is not None:
        metrics.enable()
    runtime = Runtime(settings)
    app: ASGIApp = create_app(settings, runtime)
    if fast_path.enabled():
        metrics_bind = settings.metrics.bind if settings.metrics is not None else None
        app = fast_path.FastPath(app, runtime, metrics_bind[1] if metrics_bind else None)
    if access_log is None and settings.metrics is None:
        return app
    return Watched(app, access_log=access_log, count=settings.metrics is not None)


class IndexSync:
    """Runs the worker's index sync loop for the life of the app (ASGI lifespan)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.task: asyncio.Task[None] | None = None

    async def process_startup(self, scope: Mapping[str, Any], event: Mapping[str, Any]) -> None:
        self.task = asyncio.create_task(self.runtime.sync_forever())

    async def process_shutdown(self, scope: Mapping[str, Any], event: Mapping[str, Any]) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


class VaryOnAccept:
    """``Vary: Accept, Accept-Encoding`` on every simple page (PEP 691), redirects and errors
    included, so caches keep the HTML and JSON forms (and their gzip forms) apart."""

    async def process_response(
        self,
        req: falcon.asgi.Request,
        resp: falcon.asgi.Response,
        resource: Any,
        req_succeeded: bool,
    ) -> None:
        path = req.path
        if path.startswith("/simple") and (path.endswith("/") or path.count("/") <= 2):
            resp.set_header("Vary", PAGE_VARY)


def _multipart_handler() -> MultipartFormHandler:
    options = MultipartParseOptions()
    options.max_body_part_count = MAX_FORM_PARTS
    return MultipartFormHandler(options)


async def _user_error(
    req: falcon.asgi.Request, resp: falcon.asgi.Response, error: UserError, params: Any
) -> None:
    resp.status = error.http_status
    resp.content_type = falcon.MEDIA_TEXT
    resp.text = f"{error}\n"
    if error.http_status == 401:
        resp.set_header("WWW-Authenticate", 'Basic realm="private-pypi"')
    if error.retry_after is not None:
        resp.set_header("Retry-After", str(error.retry_after))


async def _storage_error(
    req: falcon.asgi.Request,
    resp: falcon.asgi.Response,
    error: OSError,
    params: Any,
) -> None:
    """A backend call failed: answered as ``StorageUnavailable`` (503, Retry-After, a text
    that names nothing of the store), like the failures the repository reports itself; the
    cause goes to the log, once per outage (``outages``)."""
    _note_store_failure(req, error)
    await _user_error(req, resp, StorageUnavailable(), params)


def _note_store_failure(req: falcon.asgi.Request, error: OSError) -> None:
    """Note a backend call's failure in the outage record of the repository the request's
    credential opened."""
    repository = getattr(req.context, "repository", None)
    if repository is not None:
        outages.store_failed(repository, error)
    elif not outages.any_known():
        log.error("%s %s: store unavailable: %s", req.method, req.path, error)


def _plain_text_error(req: falcon.Request, resp: falcon.Response, error: falcon.HTTPError) -> None:
    resp.content_type = falcon.MEDIA_TEXT
    resp.text = f"{error.title}: {error.description}\n" if error.description else f"{error.title}\n"
