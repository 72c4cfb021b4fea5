"""``GET /healthz`` and ``GET /readyz``, for load balancers and orchestrators.

Both need no credential, make no store call and are never held back by the guess throttle: a
probe may ask every second. ``/healthz`` answers 200 while the worker's event loop runs.
``/readyz`` answers 200 while every package repository can be served (``health``), else 503
with how many cannot and why; which ones, only to an admin credential (repository names are
not for anyone to enumerate) and in the server log, once per change in each worker.
"""

from __future__ import annotations

import logging

import falcon
import falcon.asgi

from private_pypi_core.errors import UserError
from private_pypi_core.health import RepositoryHealth, assess, summary
from private_pypi_core.web.runtime import Runtime

log = logging.getLogger(__name__)

NO_STORE = ["no-store"]


def _plain(resp: falcon.asgi.Response, text: str) -> None:
    resp.content_type = falcon.MEDIA_TEXT
    resp.cache_control = NO_STORE
    resp.text = text


class Healthz:
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        _plain(resp, "ok\n")

    on_head = on_get


class Readyz:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._problems: list[str] = []  # as last logged by this worker

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        health = assess(self.runtime.configuration.repositories.values())
        failing = [repository for repository in health if repository.problem]
        self._log_change(failing)
        lines = [summary(health)]
        if failing:
            resp.status = falcon.HTTP_503
            if await self._asked_by_admin(req):
                lines += [repository.explain() for repository in failing]
        _plain(resp, "".join(f"{line}\n" for line in lines))

    on_head = on_get

    async def _asked_by_admin(self, req: falcon.asgi.Request) -> bool:
        """Whether the request carries an admin credential. Only a request with a credential
        is checked (in the guess throttle, as anywhere); a wrong one gets the answer for all."""
        if req.get_header("Authorization") is None:
            return False
        try:
            return await self.runtime.is_admin(req)
        except UserError:
            return False

    def _log_change(self, failing: list[RepositoryHealth]) -> None:
        problems = [f"{repository.name}: {repository.problem}" for repository in failing]
        if problems == self._problems:
            return
        if problems:
            log.warning("not ready: %s", "; ".join(repository.explain() for repository in failing))
        else:
            log.info("ready again")
        self._problems = problems
