"""Package management over HTTP: ``POST /yank/`` and ``POST /unyank/`` (PEP 592)."""

from __future__ import annotations

import falcon
import falcon.asgi

from private_pypi_core.auth import Action
from private_pypi_core.dists import normalize_project
from private_pypi_core.errors import BadRequest
from private_pypi_core.web.forms import read_text_form
from private_pypi_core.web.runtime import Runtime


class Yank:
    """Form fields ``project``, ``target`` (a version or a filename) and, to yank, an
    optional ``reason``. Needs the repository's write secret."""

    def __init__(self, runtime: Runtime, *, yank: bool) -> None:
        self.runtime = runtime
        self.yank = yank

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        repository = await self.runtime.authorize(req, Action.YANK)
        action = "yank" if self.yank else "unyank"
        form = await read_text_form(req, what=f"POST /{action}/")
        if not form.get("project") or not form.get("target"):
            raise BadRequest(
                f"POST /{action}/ needs the form fields 'project' and 'target' "
                "(a version or a filename)."
            )
        project = normalize_project(form["project"])
        self.runtime.check_project(req, Action.YANK, project)
        reason = form.get("reason", "") if self.yank else None
        filenames = await self.runtime.run(
            repository.set_yanked, form["project"], form["target"], reason
        )
        for filename in filenames:
            self.runtime.record(
                req, repository, action, project=project, filename=filename, reason=reason or None
            )
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = "".join(f"{action}ed {filename}\n" for filename in filenames)
