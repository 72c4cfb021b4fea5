"""Project status (PEP 792) over HTTP, for ``private_pypi status``: ``POST /_/status/``.

Needs the repository's write secret (or another credential that may manage it): a token
never changes a status, which can close a project to every uploader or hide all its files.
"""

from __future__ import annotations

import falcon
import falcon.asgi

from private_pypi_core.auth import Action
from private_pypi_core.dists import validate_project
from private_pypi_core.errors import BadRequest
from private_pypi_core.index import ProjectStatus
from private_pypi_core.web.forms import read_text_form
from private_pypi_core.web.runtime import Runtime


class Status:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """Form fields ``project``, ``status`` (active, archived, quarantined or deprecated)
        and an optional ``reason``, shown with it."""
        repository = await self.runtime.authorize(req, Action.MANAGE)
        form = await read_text_form(req, what="POST /_/status/")
        if not form.get("project") or not form.get("status"):
            raise BadRequest(
                "POST /_/status/ needs the form fields 'project' and 'status' "
                "(active, archived, quarantined or deprecated)."
            )
        project = validate_project(form["project"])
        self.runtime.check_project(req, Action.MANAGE, project)
        try:
            status = ProjectStatus(form["status"].strip(), form.get("reason", "").strip())
        except ValueError as error:
            raise BadRequest(f"POST /_/status/: {error}.") from None
        before = await self.runtime.run(repository.set_status, project, status)
        self.runtime.record(
            req,
            repository,
            f"status {status.status}",
            project=project,
            reason=status.reason or None,
            previous=before.status,
        )
        resp.content_type = falcon.MEDIA_TEXT
        because = f" ({status.reason})" if status.reason else ""
        resp.text = f"{project} is {status.status}{because}, was {before.status}\n"
