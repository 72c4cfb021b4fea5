"""Browser login: ``/login/`` starts a server-side session (see ``sessions``) and lands on the
web UI (``/``, or the UI page that sent the browser to log in: ``?next=``), ``/logout/`` ends it.

The login form is protected against cross-site request forgery with a double-submit token:
the form carries a random token that must equal the one in a SameSite=Strict cookie set with
the form, which another site can neither read nor make the browser send. Logging out is a
POST (``GET /logout/`` shows the button), so a link or an image cannot log anyone out.
"""

from __future__ import annotations

import hmac
import re
import secrets

import falcon
import falcon.asgi

from private_pypi_core.auth_provider import Credential
from private_pypi_core.sessions import SESSION_COOKIE
from private_pypi_core.web.forms import read_text_form
from private_pypi_core.web.redirects import plain
from private_pypi_core.web.runtime import WRONG_CREDENTIAL, Runtime
from private_pypi_core.web.ui.render import serve_page

CSRF_COOKIE = "private_pypi_login_csrf"
HOME = "/"
# Where a login may land: a path of this server, never another site (no "//host", no "\").
LANDING = re.compile(r"/(?![/\\])[A-Za-z0-9._~%/-]*")
# The login and logout pages name no repository and offer no other way in or out.
NO_FRAME = {"repository": None, "signed_in": False, "may_log_in": False}


class Login:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        _login_form(req, resp, landing=_landing(req.get_param("next")))

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        form = await read_text_form(req, what="POST /login/")
        landing = _landing(form.get("next"))
        sent, expected = form.get("csrf", ""), req.cookies.get(CSRF_COOKIE, "")
        if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
            resp.status = falcon.HTTP_403
            message = "The login form expired or came from another site; try again."
            _login_form(req, resp, message, landing=landing)
            return
        credential = Credential(username=form.get("repository", ""), secret=form.get("secret", ""))
        repository, grant = await self.runtime.check(req, credential)
        if repository is None or not grant.access:
            resp.status = falcon.HTTP_401
            _login_form(req, resp, WRONG_CREDENTIAL, landing=landing)
            return
        cookie = await self.runtime.run(
            self.runtime.sessions.start, repository.name, repository.secrets_digest
        )
        resp.unset_cookie(CSRF_COOKIE, path="/login")
        resp.set_cookie(
            SESSION_COOKIE,
            cookie,
            max_age=self.runtime.sessions.max_age,
            path="/",
            secure=req.scheme == "https",
            http_only=True,
            same_site="Lax",
        )
        raise falcon.HTTPSeeOther(landing, headers=plain())


def _landing(requested: str | None) -> str:
    """Where a login lands: the page of this server that sent the browser to log in, else the
    UI's home."""
    return requested if requested and LANDING.fullmatch(requested) else HOME


def _login_form(
    req: falcon.asgi.Request, resp: falcon.asgi.Response, message: str = "", *, landing: str
) -> None:
    token = secrets.token_urlsafe(32)
    resp.set_cookie(
        CSRF_COOKIE,
        token,
        path="/login",
        secure=req.scheme == "https",
        http_only=True,
        same_site="Strict",
    )
    next_page = "" if landing == HOME else landing
    serve_page(resp, "login.html", csrf=token, message=message, next=next_page, **NO_FRAME)


class Logout:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        serve_page(resp, "logout.html", **NO_FRAME)

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        cookie = req.cookies.get(SESSION_COOKIE)
        await self.runtime.run(self.runtime.sessions.end_cookie, cookie)
        resp.unset_cookie(SESSION_COOKIE, path="/")
        raise falcon.HTTPSeeOther("/login/", headers=plain())
