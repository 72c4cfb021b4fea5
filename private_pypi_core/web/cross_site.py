"""Cross-site requests may change nothing. (The headers that keep pages from being sniffed or
framed are added to every answer by the worker, ``worker.py``.)"""

from __future__ import annotations

from urllib.parse import urlsplit

import falcon.asgi

from private_pypi_core.errors import Forbidden

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Sec-Fetch-Site values of a request a page of this server (or the user) made.
OWN_FETCH_SITES = frozenset({"same-origin", "none"})


class BrowserGuard:
    """Refuses a state-changing request that a browser sends on behalf of another site.

    Packaging tools send neither ``Sec-Fetch-Site`` nor ``Origin``, so their uploads pass;
    a browser sends one or both, and only the server's own pages may POST.
    """

    def __init__(self, public_url: str) -> None:
        self.public_origin = _origin(public_url) if public_url else None

    async def process_request(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        if req.method not in SAFE_METHODS and self._cross_site(req):
            raise Forbidden(
                "Refused: this request came from another site. Log in and act from this "
                "server's own pages, or use a packaging tool."
            )

    def _cross_site(self, req: falcon.asgi.Request) -> bool:
        fetch_site = req.get_header("Sec-Fetch-Site")
        if fetch_site is not None:
            return fetch_site.strip().lower() not in OWN_FETCH_SITES
        origin = req.get_header("Origin")
        if origin is None:
            return False
        own = {f"{req.scheme}://{(req.get_header('Host') or '').lower()}", self.public_origin}
        return origin.strip().lower() not in own


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()
