"""Server management: ``/index_mtime/`` and ``/initialize/``."""

from __future__ import annotations

import falcon
import falcon.asgi

from private_pypi_core.auth import Action
from private_pypi_core.errors import BadRequest, Unauthorized
from private_pypi_core.state import ADMIN_NEEDED
from private_pypi_core.web.forms import read_text_form
from private_pypi_core.web.runtime import Runtime, client_address

# Two TOML documents of a few repositories each: far below this.
MAX_CONFIG_FORM_BYTES = 64 << 10


class IndexMtime:
    """``GET /index_mtime/``: epoch seconds of the last sync of the credential's local index."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        repository = await self.runtime.authorize(req, Action.READ)
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = str(repository.index_mtime())


class Initialize:
    """``POST /initialize/``: replace the server's config and admin secret on the fly.

    Anyone may do it while the server runs on its pristine embedded default (no config given,
    never initialised, no package stored), so a CI job can set up a server it just started;
    such a config may not choose where anything is stored. Otherwise only the holder of an
    admin secret of the current configuration may.
    """

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        admin = await self.runtime.is_admin(req)
        if not admin and not await self.runtime.run(self.runtime.configuration.is_pristine_default):
            raise Unauthorized(ADMIN_NEEDED)
        form = await read_text_form(req, what="POST /initialize/", max_bytes=MAX_CONFIG_FORM_BYTES)
        missing = [key for key in ("config", "admin_secret") if key not in form]
        if missing:
            raise BadRequest(f"POST /initialize/ needs the form field(s): {', '.join(missing)}.")
        new = await self.runtime.reinitialize(
            form["config"], form["admin_secret"], anonymous=not admin
        )
        identity = "an admin secret" if admin else "anyone (a pristine server)"
        for repository in new.repositories.values():
            self.runtime.audit.record(
                repository.name, "initialize", identity=identity, client=client_address(req)
            )
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = f"Initialized: {', '.join(new.repositories)}\n"
