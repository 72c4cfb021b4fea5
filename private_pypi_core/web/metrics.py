"""``GET /metrics`` for Prometheus, off unless the server was started with ``--metrics``:

- ``--metrics=secret``: on the server's port, to a request with ``Authorization: Bearer
  <--metrics_secret>`` (compared in constant time, a wrong one counted by the guess throttle);
- ``--metrics=HOST:PORT``: on a listener of its own, which the master binds and every worker
  serves beside the server's port (``serve``); a request that arrives there gets ``/metrics``
  and nothing else, without a credential: bind it where only the scraper reaches.

Any worker answers with every worker's counts added up (``metrics``).
"""

from __future__ import annotations

import hmac

import falcon
import falcon.asgi

from private_pypi_core import metrics
from private_pypi_core.auth import parse_authorization
from private_pypi_core.health import assess
from private_pypi_core.web.runtime import Runtime, client_address

ROUTE = "/metrics"


async def _answer(runtime: Runtime, resp: falcon.asgi.Response) -> None:
    health = assess(runtime.configuration.repositories.values())
    body, content_type = await runtime.run(metrics.exposition, health)
    resp.content_type = content_type
    resp.cache_control = ["no-store"]
    resp.data = body


class MetricsPage:
    """``/metrics`` on the server's port, for the holder of the metrics secret."""

    def __init__(self, runtime: Runtime, secret: str) -> None:
        self.runtime = runtime
        self.secret = secret.encode()

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        if not await self._authorized(req):
            raise falcon.HTTPUnauthorized(
                description="/metrics needs the metrics secret: Authorization: Bearer <secret>",
                challenges=['Bearer realm="metrics"'],
            )
        await _answer(self.runtime, resp)

    async def _authorized(self, req: falcon.asgi.Request) -> bool:
        credential = parse_authorization(req.get_header("Authorization"))
        if credential is None or credential.username is not None:
            return False  # none, or basic auth: not a bearer token

        async def verify() -> bool:
            return hmac.compare_digest(credential.secret.encode(), self.secret)

        return await self.runtime.throttle.check(client_address(req), "", verify)


class MetricsListener:
    """Middleware: a request that arrived on the metrics listener's ``port`` is answered
    ``/metrics`` or 404, before anything else of the app runs."""

    def __init__(self, runtime: Runtime, port: int) -> None:
        self.runtime = runtime
        self.port = port

    async def process_request(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        server = req.scope.get("server")  # the address of the socket the request came in on
        if not server or server[1] != self.port:
            return
        resp.complete = True
        resp.cache_control = ["no-store"]
        if req.path != ROUTE:
            resp.status = falcon.HTTP_404
            resp.content_type = falcon.MEDIA_TEXT
            resp.text = "Only /metrics is served here.\n"
        elif req.method not in ("GET", "HEAD"):
            resp.status = falcon.HTTP_405
            resp.set_header("Allow", "GET, HEAD")
        else:
            req.context.route = ROUTE  # for the access log and metrics: no route matched
            await _answer(self.runtime, resp)
