"""Browser login: ``/login/`` sets a signed session cookie, ``/logout/`` clears it.

The login form is protected against cross-site request forgery with a double-submit token:
the form carries a random token that must equal the one in a SameSite=Strict cookie set with
the form, which another site can neither read nor make the browser send.
"""

from __future__ import annotations

import hmac
import secrets

import falcon
import falcon.asgi

from private_pypi_core.auth import SESSION_COOKIE, Credential
from private_pypi_core.backend import Access
from private_pypi_core.web import pages
from private_pypi_core.web.forms import read_text_form
from private_pypi_core.web.runtime import Runtime

HTML = "text/html; charset=utf-8"
CSRF_COOKIE = "private_pypi_login_csrf"


class Login:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        _login_form(req, resp)

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        form = await read_text_form(req, what="POST /login/")
        sent, expected = form.get("csrf", ""), req.cookies.get(CSRF_COOKIE, "")
        if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
            resp.status = falcon.HTTP_403
            _login_form(req, resp, "The login form expired or came from another site; try again.")
            return
        credential = Credential(
            repository=form.get("repository", ""), secret=form.get("secret", "")
        )
        repository = self.runtime.configuration.repositories.get(credential.repository)
        access = Access.NONE
        if repository is not None:
            access = await self.runtime.run(repository.backend.authenticate, credential.secret)
        if access is Access.NONE:
            await self.runtime.slow_down(req)
            resp.status = falcon.HTTP_401
            _login_form(req, resp, "Unknown package repository or wrong secret.")
            return
        resp.unset_cookie(CSRF_COOKIE, path="/login")
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


def _login_form(req: falcon.asgi.Request, resp: falcon.asgi.Response, message: str = "") -> None:
    token = secrets.token_urlsafe(32)
    resp.set_cookie(
        CSRF_COOKIE,
        token,
        path="/login",
        secure=req.scheme == "https",
        http_only=True,
        same_site="Strict",
    )
    resp.cache_control = ["no-store"]
    resp.content_type = HTML
    resp.text = pages.login_page(token, message)


class Logout:
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.unset_cookie(SESSION_COOKIE, path="/")
        raise falcon.HTTPSeeOther("/login/")
