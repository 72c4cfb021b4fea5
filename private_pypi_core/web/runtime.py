"""What every request handler of one worker shares: configuration, credentials, the thread pool.

Backends are synchronous: ``run`` calls them in a thread so the event loop never blocks.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import logging
from collections.abc import Callable
from typing import TypeVar

import falcon.asgi

from private_pypi_core.auth import (
    SESSION_COOKIE,
    AuthCache,
    FailureThrottle,
    SessionSigner,
    parse_basic_auth,
)
from private_pypi_core.backend import Access
from private_pypi_core.errors import Forbidden, Unauthorized
from private_pypi_core.repository import Repository
from private_pypi_core.state import (
    Configuration,
    ServerSettings,
    config_generation,
    initialize,
    load_configuration,
)
from private_pypi_core.web.page_cache import PageCache

log = logging.getLogger(__name__)

T = TypeVar("T")

SYNC_CHECK_SECONDS = 1.0


def _client(req: falcon.asgi.Request) -> str:
    return req.remote_addr or "unknown"


class Runtime:
    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.auth_cache = AuthCache(settings.auth_read_expires, settings.auth_write_expires)
        self.throttle = FailureThrottle()
        self.sessions = SessionSigner(settings.root / "session.key", settings.auth_read_expires)
        self.temp_dir = settings.root / "tmp"
        self.temp_dir.mkdir(parents=True, exist_ok=True)
        self._generation = config_generation(settings)
        self._configuration = load_configuration(settings)
        self._page_caches: dict[str, PageCache] = {}

    @property
    def configuration(self) -> Configuration:
        """The current configuration, reloaded when another worker re-initialised the server."""
        generation = config_generation(self.settings)
        if generation != self._generation:
            self._configuration = load_configuration(self.settings)
            self._generation = generation
            self.auth_cache.clear()
        return self._configuration

    def pages(self, repository: Repository) -> PageCache:
        """The rendered pages of ``repository`` in this worker."""
        return self._page_caches.setdefault(repository.name, PageCache())

    async def run(self, function: Callable[..., T], *args: object) -> T:
        return await asyncio.to_thread(function, *args)

    async def authorize(self, req: falcon.asgi.Request, needed: Access) -> Repository:
        """The repository the request's credential opens with at least ``needed`` access."""
        repositories = self.configuration.repositories
        credential = parse_basic_auth(req.get_header("Authorization"))
        if credential is None:
            session_repository = self.sessions.repository(req.cookies.get(SESSION_COOKIE))
            if needed is Access.READ and session_repository in repositories:
                return repositories[session_repository]
            raise Unauthorized(
                "Credentials needed: use HTTP basic auth with the package repository's name "
                "as the username and its secret as the password (browsers: log in at /login/)."
            )
        repository = repositories.get(credential.repository)
        if repository is None:
            await self.slow_down(req)
            raise Unauthorized(f"No package repository is named {credential.repository!r}.")
        access = self.auth_cache.get(credential)
        if access is None:
            access = await self.run(repository.backend.authenticate, credential.secret)
            self.auth_cache.put(credential, access)
        if access is Access.NONE:
            await self.slow_down(req)
            raise Unauthorized(f"Wrong secret for package repository {repository.name!r}.")
        self.throttle.succeeded(_client(req))
        if access < needed:
            raise Forbidden(
                f"This secret may only read package repository {repository.name!r}; "
                "uploading needs its write secret."
            )
        return repository

    async def slow_down(self, req: falcon.asgi.Request) -> None:
        """Answer a failed credential late when its client keeps failing."""
        delay = self.throttle.failed(_client(req))
        if delay:
            log.warning(
                "client %s: repeated auth failures, answering in %.1fs", _client(req), delay
            )
            await asyncio.sleep(delay)

    def _is_admin(self, req: falcon.asgi.Request) -> bool:
        """Whether the request carries an admin secret of the current configuration."""
        credential = parse_basic_auth(req.get_header("Authorization"))
        if credential is None:
            return False
        admin = self.configuration.admin_secrets.get(credential.repository)
        return admin is not None and hmac.compare_digest(
            credential.secret.encode(), admin.secret.encode()
        )

    async def require_admin(self, req: falcon.asgi.Request) -> None:
        if not self._is_admin(req):
            await self.slow_down(req)
            raise Unauthorized(
                "Re-initialising this server needs an admin credential: HTTP basic auth with a "
                "repository name from the admin secret file and its secret."
            )

    async def reinitialize(self, config_text: str, admin_secret_text: str) -> Configuration:
        configuration = await self.run(initialize, self.settings, config_text, admin_secret_text)
        self._configuration = configuration
        self._generation = config_generation(self.settings)
        self.auth_cache.clear()
        return configuration

    async def sync_forever(self) -> None:
        """Keep every repository's local index in sync with its remote index.

        Each worker runs this loop; the repository's lock and the local index's timestamp make
        one worker per interval do the work.
        """
        while True:
            for repository in list(self.configuration.repositories.values()):
                if not repository.sync_due():
                    continue
                try:
                    if await self.run(functools.partial(repository.sync, wait=False)):
                        log.info("repository %s: local index synced", repository.name)
                except Exception:
                    log.exception("repository %s: index sync failed", repository.name)
            await asyncio.sleep(SYNC_CHECK_SECONDS)
