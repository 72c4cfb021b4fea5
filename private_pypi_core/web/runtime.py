"""What every request handler of one worker shares: configuration, credentials, the thread pool.

Backends are synchronous: ``run`` calls them in a thread so the event loop never blocks.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import logging
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import falcon.asgi

from private_pypi_core import metrics, outages
from private_pypi_core.audit import AuditLog
from private_pypi_core.auth import (
    ANONYMOUS_GRANT,
    REFUSED,
    SESSION_GRANT,
    Action,
    AuthCache,
    parse_authorization,
    refusal_of,
    resolve,
)
from private_pypi_core.auth_provider import Credential, Grant
from private_pypi_core.backend import Access
from private_pypi_core.errors import Forbidden, Unauthorized
from private_pypi_core.repository import Repository
from private_pypi_core.sessions import SESSION_COOKIE, SessionStore
from private_pypi_core.state import (
    ADMIN_NEEDED,
    Configuration,
    ServerSettings,
    config_generation,
    initialize,
    load_configuration,
)
from private_pypi_core.throttle import GuessThrottle
from private_pypi_core.tokens import project_allowed
from private_pypi_core.web.known_tokens import KnownTokens
from private_pypi_core.web.page_cache import PageCache

log = logging.getLogger(__name__)

T = TypeVar("T")

SYNC_CHECK_SECONDS = 1.0
UPSTREAM_THREADS = 8
CREDENTIALS_NEEDED = (
    "Credentials needed: use HTTP basic auth with the package repository's name "
    "as the username and its secret as the password (browsers: log in at /login/)."
)
# The same answer whether the name or the secret is wrong: names cannot be told apart.
WRONG_CREDENTIAL = "Wrong package repository name or secret."


def client_address(req: falcon.asgi.Request) -> str:
    return req.remote_addr or "unknown"


class Runtime:
    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.auth_cache = AuthCache(settings.auth_read_expires, settings.auth_write_expires)
        self.known_tokens = KnownTokens()
        self.throttle = GuessThrottle()
        self.audit = AuditLog(settings.root)
        self.sessions = SessionStore(settings.root, settings.session_max_age)
        self.temp_dir = settings.root / "tmp"
        self.temp_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._generation = config_generation(settings)
        self._configuration = load_configuration(settings)
        self._page_caches: dict[str, PageCache] = {}
        self._upstream_threads: ThreadPoolExecutor | None = None

    @property
    def configuration(self) -> Configuration:
        """The current configuration, reloaded when another worker re-initialised the server."""
        generation = config_generation(self.settings)
        if generation != self._generation:
            self._configuration = load_configuration(self.settings)
            self._generation = generation
            self.auth_cache.clear()
            self.known_tokens.clear()
        return self._configuration

    def pages(self, repository: Repository) -> PageCache:
        """The rendered pages of ``repository`` in this worker."""
        cache = self._page_caches.get(repository.name)
        if cache is None:
            cache = self._page_caches[repository.name] = PageCache()
        return cache

    async def run(self, function: Callable[..., T], *args: object) -> T:
        return await asyncio.to_thread(function, *args)

    async def run_upstream(self, function: Callable[..., T], *args: object) -> T:
        """``run`` in the threads kept for work that waits on an upstream index (a proxy's
        pages and first downloads): however slowly it answers, the other repositories'
        requests still find threads."""
        if self._upstream_threads is None:
            self._upstream_threads = ThreadPoolExecutor(
                UPSTREAM_THREADS, thread_name_prefix="upstream"
            )
        return await asyncio.get_running_loop().run_in_executor(
            self._upstream_threads, functools.partial(function, *args)
        )

    async def authorize(self, req: falcon.asgi.Request, action: Action) -> Repository:
        """The repository the request's credential (or browser session, or anonymous read)
        opens for ``action``; its grant is kept in ``req.context.grant``."""
        credential = parse_authorization(req.get_header("Authorization"))
        if credential is None:
            repository = self._session_repository(req)
            grant = SESSION_GRANT
            if repository is None:
                repository, grant = self.configuration.anonymous_repository(), ANONYMOUS_GRANT
            if repository is None or action is not Action.READ:
                raise Unauthorized(CREDENTIALS_NEEDED)
        else:
            found, grant = await self.check(req, credential)
            if found is None or not grant.access:
                raise Unauthorized(WRONG_CREDENTIAL)
            repository = found
            refusal = refusal_of(grant, action, repository.name)
            if refusal:
                raise Forbidden(refusal)
        req.context.repository = repository  # for the error handlers
        req.context.grant = grant
        return repository

    def authorize_at_once(
        self, authorization: str | None, cookie: bool, client: str
    ) -> tuple[Repository, Grant] | None:
        """What ``authorize`` answers a read with this ``Authorization`` header (and a Cookie
        header when ``cookie``) from ``client``, where that is known without waiting: an
        anonymous read, or a credential that opened a repository lately (``check``'s shortcut,
        and a token ``check`` let in, while its index is unchanged: ``known_tokens``), from a
        client with no check under way. ``None`` for the rest: a browser session, a credential
        unknown or refused, a client being throttled: ``authorize`` decides those."""
        credential = parse_authorization(authorization)
        if credential is None:
            if cookie:
                return None  # perhaps a browser session
            repository = self.configuration.anonymous_repository()
            return None if repository is None else (repository, ANONYMOUS_GRANT)
        repositories = self.configuration.repositories
        if not self.throttle.idle(client):
            return None
        known = self._cached(credential, repositories) or self.known_tokens.find(
            credential, repositories
        )
        if known is None or not known[1].access or refusal_of(known[1], Action.READ, known[0].name):
            return None
        return known

    def record(
        self, req: falcon.asgi.Request, repository: Repository, action: str, **details: object
    ) -> None:
        """Add a write the request took to the audit trail, with who and from where."""
        identity = req.context.grant.identity if "grant" in req.context else "admin"
        self.audit.record(
            repository.name, action, identity=identity, client=client_address(req), **details
        )

    def check_project(self, req: falcon.asgi.Request, action: Action, project: str) -> None:
        """``Forbidden`` unless the request's grant may take ``action`` on ``project``."""
        grant: Grant = req.context.grant
        if not project_allowed(grant.projects, project):
            raise Forbidden(
                f"{grant.identity} may {action.value} only projects matching "
                f"{', '.join(grant.projects)}, not {project!r}."
            )

    async def check(
        self, req: falcon.asgi.Request, credential: Credential
    ) -> tuple[Repository | None, Grant]:
        """The repository a credential opens and what it may do there, checked in the
        client's turn (see ``throttle``); ``(None, REFUSED)`` when it opens none. An unknown
        name costs the same as a wrong secret."""
        repositories = self.configuration.repositories
        client = client_address(req)
        if self.throttle.idle(client) and (known := self._cached(credential, repositories)):
            # A known credential of a client with no check under way: the same answer, at once,
            # as in its turn (which would come at once), without the cost of taking it.
            return known
        found: Repository | None = None
        grant = REFUSED

        async def verify() -> Access:
            nonlocal found, grant
            known = self._cached(credential, repositories)
            if known is not None:
                found, grant = known
                return grant.access
            found, grant = await self.run(resolve, repositories, credential)
            if found is not None:
                self.auth_cache.put(credential, found.name, grant)
                self.known_tokens.note(credential, found, grant, repositories)
            return grant.access

        await self.throttle.check(client, credential.username or "", verify)
        return found, grant

    def _cached(
        self, credential: Credential, repositories: Mapping[str, Repository]
    ) -> tuple[Repository, Grant] | None:
        cached = self.auth_cache.get(credential)
        if cached is None or cached[0] not in repositories:
            return None
        return repositories[cached[0]], cached[1]

    def _session_repository(self, req: falcon.asgi.Request) -> Repository | None:
        """The repository of the request's live browser session, if its secrets are those it
        was opened with."""
        session = self.sessions.find(req.cookies.get(SESSION_COOKIE))
        if session is None:
            return None
        repository = self.configuration.repositories.get(session.repository)
        if repository is None or not self.sessions.holds_secrets(
            session, repository.secrets_digest
        ):
            self.sessions.end(session.id)
            return None
        return repository

    async def is_admin(self, req: falcon.asgi.Request) -> bool:
        """Whether the request carries an admin secret of the current configuration;
        ``Unauthorized`` when it carries another credential."""
        credential = parse_authorization(req.get_header("Authorization"))
        if credential is None:
            return False
        admin = self.configuration.admin_secrets.get(credential.username or "")

        async def verify() -> bool:
            expected = admin.secret if admin is not None else ""
            matches = hmac.compare_digest(credential.secret.encode(), expected.encode())
            return admin is not None and matches

        client = client_address(req)
        if not await self.throttle.check(client, credential.username or "", verify):
            raise Unauthorized(ADMIN_NEEDED)
        return True

    async def reinitialize(
        self, config_text: str, admin_secret_text: str, *, anonymous: bool
    ) -> Configuration:
        configuration = await self.run(
            functools.partial(
                initialize, self.settings, config_text, admin_secret_text, anonymous=anonymous
            )
        )
        self._configuration = configuration
        self._generation = config_generation(self.settings)
        self.auth_cache.clear()
        self.known_tokens.clear()
        return configuration

    async def sync_forever(self) -> None:
        """Keep every repository's local index in sync with its remote index.

        Each worker runs this loop; the repository's lock and the local index's timestamp make
        one worker per interval do the work. A store out of reach is logged once per worker
        when the outage starts and once when it ends (``outages``), not at every attempt.
        """
        while True:
            for repository in list(self.configuration.repositories.values()):
                try:
                    answered = await self._sync_or_probe(repository)
                except Exception as error:
                    outages.store_failed(repository, error)
                    metrics.record_sync_failure(repository.name)
                else:
                    if answered:
                        outages.store_answered(repository)
            await asyncio.sleep(SYNC_CHECK_SECONDS)

    async def _sync_or_probe(self, repository: Repository) -> bool:
        """Sync ``repository`` when due; else, while its store is out of reach, ask the store
        whether it is back (so the outage's end is seen at once, not an interval later).
        Whether the store answered."""
        if repository.sync_due():
            if not await self.run(functools.partial(repository.sync, wait=False)):
                return False  # another worker holds the lock, or has just synced
            log.info("repository %s: local index synced", repository.name)
            return True
        if outages.is_out(repository):
            await self.run(repository.backend.read_index)
            return True
        return False
