"""API tokens over HTTP, for ``private_pypi token``: ``/_/tokens/`` lists (GET) and creates
(POST), ``/_/tokens/revoke/`` revokes. Needs the repository's write secret (or another
credential that may manage it): a token never makes tokens."""

from __future__ import annotations

import falcon
import falcon.asgi

from private_pypi_core.auth import Action
from private_pypi_core.errors import BadRequest
from private_pypi_core.tokens import DEFAULT_LIFETIME, new_token, parse_lifetime
from private_pypi_core.web.forms import read_text_form
from private_pypi_core.web.runtime import Runtime


class Tokens:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        repository = await self.runtime.authorize(req, Action.MANAGE)
        tokens = sorted(repository.index.tokens.values(), key=lambda token: token.created)
        resp.media = {"repository": repository.name, "tokens": [t.public() for t in tokens]}

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """Form fields: ``scopes`` (comma-separated: read, upload, yank), ``projects``
        (comma-separated globs, optional), ``expires`` (``90d`` by default, ``1h``, ``never``)
        and ``note``."""
        repository = await self.runtime.authorize(req, Action.MANAGE)
        form = await read_text_form(req, what="POST /_/tokens/")
        expires = form.get("expires", "").strip()
        token, record = new_token(
            scopes=_listed(form.get("scopes", "")),
            projects=_listed(form.get("projects", "")),
            lifetime=parse_lifetime(expires) if expires else DEFAULT_LIFETIME,
            note=form.get("note", ""),
            created_by=req.context.grant.identity,
        )
        await self.runtime.run(repository.add_token, record)
        self.runtime.record(req, repository, "create token", token=record.id, note=record.note)
        resp.status = falcon.HTTP_201
        resp.cache_control = ["no-store"]
        resp.media = {"token": token, **record.public()}


class RevokeToken:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """Form field ``id``: the token to revoke."""
        repository = await self.runtime.authorize(req, Action.MANAGE)
        form = await read_text_form(req, what="POST /_/tokens/revoke/")
        token_id = form.get("id", "").strip()
        if not token_id:
            raise BadRequest("POST /_/tokens/revoke/ needs the form field 'id'.")
        record = await self.runtime.run(repository.revoke_token, token_id)
        self.runtime.record(req, repository, "revoke token", token=record.id, note=record.note)
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = f"revoked {record.describe()}\n"


def _listed(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]
