"""Trusted publishing over HTTP, answered as pypi.org answers it (``oidc``): ``GET
/_/oidc/audience``, ``POST /_/oidc/mint-token`` and ``POST /_/oidc/burn-token``.

Clients reach them without a credential, at the server's root, whatever repository they
publish to: the publisher an ID token proves to be names the repository, and the minted token
belongs to it. Bodies are small JSON objects, read like the small forms (``forms``).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import falcon
import falcon.asgi

from private_pypi_core.oidc import REUSED, TokenRefused, TrustedPublishing, minted_token
from private_pypi_core.web.forms import read_body
from private_pypi_core.web.runtime import Runtime, client_address

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 16 << 10  # {"token": "<an ID token of a few KB>"}
# Claims of the ID token kept in the audit trail besides the publisher's own: which run it was.
AUDITED_CLAIMS = ("sub", "ref", "sha", "run_id", "job_workflow_ref", "pipeline_id", "job_id")


class Audience:
    """The audience ID tokens must name: ``{"audience": "..."}``."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.media = {"audience": self.runtime.settings.oidc_audience}


class MintToken:
    """``{"token": "<ID token>"}`` -> ``{"success": true, "token": "pypp_...", "expires": T}``,
    an upload token of the publisher's repository for its projects; a refusal is answered
    422 with pypi.org's ``{"message": ..., "errors": [{"code": ..., "description": ...}]}``."""

    def __init__(self, runtime: Runtime, publishing: TrustedPublishing) -> None:
        self.runtime = runtime
        self.publishing = publishing

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        id_token = await _token_in(req, what="POST /_/oidc/mint-token")
        repositories = list(self.runtime.configuration.repositories.values())
        exchange = await self.runtime.run(self.publishing.exchange, id_token, repositories)
        token, record = minted_token(exchange)
        repository = exchange.repository
        if not await self.runtime.run(repository.add_minted_token, record):
            raise TokenRefused(*REUSED)
        audited = {k: v for k in AUDITED_CLAIMS if isinstance(v := exchange.claims.get(k), str)}
        self.runtime.audit.record(
            repository.name,
            "trusted publishing",
            identity=exchange.publisher.describe(),
            client=client_address(req),
            token=record.id,
            claims=audited,
        )
        assert record.expires is not None
        resp.cache_control = ["no-store"]
        resp.media = {"success": True, "token": token, "expires": int(record.expires.timestamp())}


class BurnToken:
    """``{"token": "pypp_..."}``: revoke a minted token its holder is done with (``uv
    publish`` burns it after the upload); ``{"success": true}``, also for a token this server
    does not know (one of another server on the store that this one has not synced yet lives
    out its minutes)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        token = await _token_in(req, what="POST /_/oidc/burn-token")
        for repository in self.runtime.configuration.repositories.values():
            record = await self.runtime.run(repository.burn_minted_token, token)
            if record is not None:
                self.runtime.audit.record(
                    repository.name,
                    "burn token",
                    identity=record.created_by,
                    client=client_address(req),
                    token=record.id,
                )
                break
        resp.media = {"success": True}


async def refused(
    req: falcon.asgi.Request, resp: falcon.asgi.Response, error: TokenRefused, params: Any
) -> None:
    """A refused exchange, in pypi.org's shape."""
    log.info("trusted publishing refused to %s: %s: %s", client_address(req), error.code, error)
    resp.status = error.http_status
    resp.media = {
        "message": "Token request failed",
        "errors": [{"code": error.code, "description": str(error)}],
    }
    if error.retry_after is not None:
        resp.set_header("Retry-After", str(error.retry_after))


async def _token_in(req: falcon.asgi.Request, *, what: str) -> str:
    """The ``token`` of the request's JSON body."""
    body = await read_body(req, what=what, max_bytes=MAX_BODY_BYTES)
    try:
        document = json.loads(body)
    except ValueError:
        document = None
    token = document.get("token") if isinstance(document, dict) else None
    if not isinstance(token, str):
        raise TokenRefused("invalid-payload", f'{what} takes JSON: {{"token": "..."}}')
    return token
