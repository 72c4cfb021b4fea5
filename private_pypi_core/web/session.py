"""Browser login: ``/login/`` sets a signed session cookie, ``/logout/`` clears it."""

from __future__ import annotations

import falcon
import falcon.asgi

from private_pypi_core.auth import SESSION_COOKIE, Credential
from private_pypi_core.backend import Access
from private_pypi_core.web import pages
from private_pypi_core.web.forms import read_text_form
from private_pypi_core.web.runtime import Runtime

HTML = "text/html; charset=utf-8"


class Login:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.content_type = HTML
        resp.text = pages.login_page()

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        form = await read_text_form(req, what="POST /login/")
        credential = Credential(
            repository=form.get("repository", ""), secret=form.get("secret", "")
        )
        repository = self.runtime.configuration.repositories.get(credential.repository)
        access = Access.NONE
        if repository is not None:
            access = await self.runtime.run(repository.backend.authenticate, credential.secret)
        if access is Access.NONE:
            resp.status = falcon.HTTP_401
            resp.content_type = HTML
            resp.text = pages.login_page("Unknown package repository or wrong secret.")
            return
        resp.set_cookie(
            SESSION_COOKIE,
            self.runtime.sessions.sign(credential.repository),
            max_age=self.runtime.sessions.max_age,
            path="/",
            secure=req.scheme == "https",
            http_only=True,
            same_site="Lax",
        )
        raise falcon.HTTPSeeOther("/simple/")


class Logout:
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.unset_cookie(SESSION_COOKIE, path="/")
        raise falcon.HTTPSeeOther("/login/")
