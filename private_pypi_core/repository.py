"""One package repository as the server runs it: its backend, its local index, its uploads.

State shared by the server's worker processes lives in files under ROOT/cache/<name>/: the
local copy of the remote index (``index_store.LocalIndex``; every worker reloads what changed)
and a lock that serialises index writes and syncs across workers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import filelock
from packaging.version import InvalidVersion, Version

from private_pypi_core import events, outages
from private_pypi_core.auth import REFUSED, secrets_digest
from private_pypi_core.auth_provider import AuthProvider, Credential, Grant, ProviderSettings
from private_pypi_core.backend import (
    Access,
    Backend,
    BackendConfig,
    DistFile,
    FileExists,
    IndexConflict,
    check_repository_name,
)
from private_pypi_core.dists import normalize_project, release_identity
from private_pypi_core.errors import BadRequest, Conflict, NotFound, StorageUnavailable
from private_pypi_core.guarded_backend import guarded
from private_pypi_core.index import (
    ATTESTATIONS_SUFFIX,
    IndexEntry,
    PackageIndex,
    ProjectStatus,
    build_index,
    sha256_of,
)
from private_pypi_core.index_store import (
    LocalIndex,
    ShardCache,
    StoredIndex,
    read_remote,
    sync_local,
    write_remote,
)
from private_pypi_core.plugins import auth_provider_class, backend_class
from private_pypi_core.progress import Progress
from private_pypi_core.tokens import TokenRecord, TokensProvider, find_token

log = logging.getLogger(__name__)

LOCK_TIMEOUT_SECONDS = 60

INDEX_WRITE_ATTEMPTS = 8


@dataclass(frozen=True)
class Upload:
    """A received file, complete and checked, waiting in a local temp file (and its core
    metadata in another, when it has any)."""

    entry: IndexEntry
    path: Path
    metadata_path: Path | None = None
    attestations_path: Path | None = None  # the upload's PEP 740 attestations, kept as sent


@dataclass(eq=False)
class _Waiting:
    """An upload waiting to be published, and its outcome once it is."""

    upload: Upload
    outcome: Future[bool] = field(default_factory=Future)
    created: bool | None = None


class _AlreadyMinted(Exception):
    """A token was already minted for this ID token: the index is left as it is."""


def _refuse_another_spelling(index: PackageIndex, entry: IndexEntry) -> None:
    """``Conflict`` when the release already has this file under another name (another
    spelling of the project or version, e.g. ``Demo_Pkg`` or ``1.0.0`` for ``1.0``)."""
    identity = release_identity(entry.dist)
    for other in index.files_of(entry.project) or []:
        if release_identity(other.dist) == identity:
            raise Conflict(
                f"File already exists: {other.filename!r} is the same file of this release "
                f"(same project, version and tags) as {entry.filename!r}; a published file "
                "never changes, so upload it under a new version."
            )


def _refuse_closed_project(index: PackageIndex, project: str) -> None:
    """``BadRequest`` when ``project`` is archived or quarantined (PEP 792): it takes no new
    files. A 400, as pypi.org answers, for no credential may upload there."""
    status = index.status_of(project)
    if not status.accepts_uploads:
        because = f" ({status.reason})" if status.reason else ""
        raise BadRequest(
            f"Project {project!r} is {status.status}{because}: it takes no new uploads."
        )


def _same_version(text: str, version: str) -> bool:
    try:
        return Version(text) == Version(version)
    except InvalidVersion:
        return False


class Repository:
    """A configured package repository with its backend and its local index."""

    def __init__(
        self,
        config: BackendConfig,
        root: Path,
        *,
        admin_secret: str | None = None,
        auth: Mapping[str, ProviderSettings] | None = None,
    ) -> None:
        """``auth`` holds the settings of the repository's auth providers, by name (those
        left out take their defaults)."""
        self.config = config
        self.name = check_repository_name(config.name)
        self.folder = root / "cache" / config.name
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        backend_type = backend_class(config.type)
        # Guarded: whatever the backend raises outside its contract reaches the core as an
        # OSError, answered 503 like any store failure (``guarded_backend``).
        self.backend: Backend = guarded(backend_type(config, root, admin_secret=admin_secret))
        self.auth_providers: list[AuthProvider] = []
        for name in config.auth or backend_type.default_auth:
            provider = auth_provider_class(name)
            settings = (auth or {}).get(name) or provider.settings_class()
            if issubclass(provider, TokensProvider):  # the core's own: tokens live in the index
                tokens = TokensProvider(
                    self.name, settings, self.backend, root, tokens=lambda: self.index.tokens
                )
                self.auth_providers.append(tokens)
            else:
                self.auth_providers.append(provider(self.name, settings, self.backend, root))
        self.secrets_digest = secrets_digest(
            config, admin_secret, [p.settings for p in self.auth_providers]
        )
        self._shards = ShardCache()
        self.local = LocalIndex(
            self.folder, self._shards, label=f"the local index of {self.name!r}"
        )
        self.synced_marker = self.folder / "index.synced"  # its mtime: the last update
        # Polled while another worker holds it: every 5 ms rather than filelock's 50, so
        # concurrent uploads queue for milliseconds, not for a tenth of a second each.
        self.lock = filelock.FileLock(
            self.folder / "index.lock", timeout=LOCK_TIMEOUT_SECONDS, poll_interval=0.005
        )
        # Group commit of uploads (``publish``): those waiting, and the one thread of this
        # process publishing at a time.
        self._queue: list[_Waiting] = []
        self._queue_lock = threading.Lock()
        self._commit_lock = threading.Lock()
        self._last_remote: StoredIndex | None = None  # the remote index last read or written

    @property
    def index(self) -> PackageIndex:
        """The local index, reloaded when another worker (or a sync) replaced it."""
        return self.local.current()

    def index_mtime(self) -> int:
        """When the local index was last synced or written (epoch seconds), 0 if never."""
        try:
            return int(os.stat(self.synced_marker).st_mtime)
        except FileNotFoundError:
            return 0

    def authenticate(self, credential: Credential) -> Grant | None:
        """What ``credential`` may do here: the first definite answer of the repository's auth
        providers (``Access.NONE`` refuses it), ``None`` if none knows it. A provider that
        fails refuses it."""
        for provider in self.auth_providers:
            try:
                access = provider.authenticate(credential)
            except Exception as error:
                # A service out of reach explains itself; anything else is a bug: show where.
                log.warning(
                    "repository %s: auth provider %r failed, the credential is refused: %s",
                    self.name,
                    provider.name,
                    error,
                    exc_info=None if isinstance(error, OSError) else error,
                )
                return REFUSED
            if isinstance(access, Access):
                return Grant(access=access, identity=f"{provider.name}: {credential.username}")
            if access is not None:
                return access
        return None

    def add_token(self, token: TokenRecord) -> None:
        """Store a new API token's record in the index."""
        self.check_token_changes()
        with self.lock:
            self._update_remote(lambda index: index.with_token(token), "tokens")
        log.info("repository %s: created %s", self.name, token.describe())

    def revoke_token(self, token_id: str) -> TokenRecord:
        """Remove an API token from the index; ``NotFound`` when there is none of that id."""
        self.check_token_changes()
        with self.lock:
            stored = self._fetch_remote()
            token = stored.index.tokens.get(token_id)
            if token is None:
                raise NotFound(f"No token {token_id!r} in repository {self.name!r}.")
            self._update_remote(lambda index: index.without_token(token_id), "tokens", stored)
        log.info("repository %s: revoked %s", self.name, token.describe())
        return token

    def add_minted_token(self, token: TokenRecord) -> bool:
        """Store a token minted by trusted publishing, unless one was already minted for its
        ID token (``token.id_token_sha256``): whether it was stored. Checked in the write
        itself, so an ID token is exchanged once across workers and servers. Minted tokens
        that are spent (``TokenRecord.spent``) are dropped in the same write."""
        self.check_token_changes()
        now = datetime.now(UTC)

        def change(index: PackageIndex) -> PackageIndex:
            if any(t.id_token_sha256 == token.id_token_sha256 for t in index.tokens.values()):
                raise _AlreadyMinted
            for spent in [t.id for t in index.tokens.values() if t.spent(now)]:
                index = index.without_token(spent)
            return index.with_token(token)

        with self.lock:
            try:
                self._update_remote(change, "tokens")
            except _AlreadyMinted:
                return False
        log.info("repository %s: minted %s", self.name, token.describe())
        return True

    def burn_minted_token(self, token: str) -> TokenRecord | None:
        """Revoke a token minted by trusted publishing, given the token itself (its holder is
        done with it); its record, or ``None`` when the local index holds no such token."""
        record = find_token(self.index.tokens, token)
        if record is None or record.id_token_sha256 is None:
            return None
        try:
            return self.revoke_token(record.id)
        except NotFound:
            return None  # revoked meanwhile

    def sync_due(self) -> bool:
        return time.time() - self.index_mtime() >= self.config.sync_index_interval

    def waits_on_upstream(self, project: str) -> bool:
        """Whether serving ``project`` may wait on an upstream index (a proxy's). Such a
        project the repository does not have is a 404, never a redirect to
        ``--extra_index_url``: the upstream answered for it."""
        return False

    def refresh_project(self, project: str) -> str | None:
        """Bring the page of the normalised ``project`` up to date before it is served; the
        value of a ``Warning`` header when it could not be. A repository that holds its own
        files has nothing to do: proxy and virtual repositories (``proxy``, ``virtual``) do."""
        return None

    def cache_file(self, dist: DistFile) -> None:
        """Make sure a listed file is in the store, whole (a proxy fetches it)."""

    def page_is_fresh(self, project: str) -> bool:
        """Whether ``refresh_project`` would return at once, with no warning."""
        return True

    def check_uploads(self) -> None:
        """``Forbidden`` when the repository takes no uploads at all."""

    def check_listing_changes(self) -> None:
        """``Forbidden`` when the repository's files are not its own to yank or to give a
        status (a proxy's are its upstream's, a virtual repository's its members')."""

    def check_token_changes(self) -> None:
        """``Forbidden`` when the repository keeps no API tokens of its own."""

    def sync(self, *, wait: bool = True) -> bool:
        """Copy the remote index to the local one; with ``wait=False`` skip if another worker is
        already at it. Returns whether this call synced."""
        try:
            with self.lock.acquire(timeout=LOCK_TIMEOUT_SECONDS if wait else 0):
                if not wait and not self.sync_due():
                    return False  # another worker synced while this one waited for the lock
                self._sync_local()
                return True
        except filelock.Timeout:
            return False

    def publish(self, upload: Upload) -> bool:
        """Store an upload and list it in the remote and local index.

        Returns ``False`` when the very same file (same sha256) was already there, and raises
        ``Conflict`` when a different file of that name exists: stored files never change.

        Uploads that arrive while this process is publishing others wait, then are published
        together, in one index write (group commit): concurrent uploads share its cost rather
        than queue for one each.
        """
        waiting = _Waiting(upload)
        with self._queue_lock:
            self._queue.append(waiting)
        with self._commit_lock:
            if not waiting.outcome.done():
                with self._queue_lock:
                    batch, self._queue = self._queue, []
                self._publish_together(batch)
        created = waiting.outcome.result()
        if created:
            log.info("repository %s: published %s", self.name, upload.entry.filename)
        return created

    def _publish_together(self, batch: list[_Waiting]) -> None:
        """Publish ``batch`` with one index write; each upload's outcome, or its own error,
        goes to its waiter."""
        listed: list[_Waiting] = []
        try:
            with self.lock:
                stored = self._fetch_remote()
                index = stored.index
                for waiting in batch:
                    try:
                        waiting.created = self._store_file(index, waiting.upload)
                    except Exception as error:  # this upload's own: the others go on
                        waiting.outcome.set_exception(error)
                        continue
                    if waiting.created is None:  # this very file was listed already
                        waiting.outcome.set_result(False)
                        continue
                    index = index.with_entry(waiting.upload.entry)
                    listed.append(waiting)
                if listed:
                    entries = [waiting.upload.entry for waiting in listed]
                    self._update_remote(
                        lambda index: index.with_entries(
                            index.entry(e.filename, e.project) or e for e in entries
                        ),
                        "published",
                        stored,
                    )
                elif stored.root is not None:
                    self._store_local(stored)  # the local copy may lag after a crash
        except BaseException as error:  # no waiter is left waiting for ever
            for waiting in batch:
                if not waiting.outcome.done():
                    waiting.outcome.set_exception(error)
            if not isinstance(error, Exception):
                raise
            return
        for waiting in listed:
            waiting.outcome.set_result(bool(waiting.created))

    def _store_file(self, index: PackageIndex, upload: Upload) -> bool | None:
        """Store ``upload``'s file and companions for ``index`` to list: whether this call
        stored the file (``False``: it was stored, not listed), ``None`` when ``index`` lists
        this very file already; ``Conflict`` or ``BadRequest`` when it may not be published."""
        entry = upload.entry
        _refuse_closed_project(index, entry.project)
        known = index.entry(entry.filename, entry.project)
        if known is not None:
            self._same_file_or_conflict(entry.sha256, known.sha256, entry.filename)
            return None
        _refuse_another_spelling(index, entry)
        try:
            self.backend.write_file(entry.dist, upload.path)
        except FileExists:
            # Stored by another server, or by a crash before indexing: compare what is there.
            stored_sha256 = sha256_of(self.backend, entry.dist)
            self._same_file_or_conflict(entry.sha256, stored_sha256, entry.filename)
            created = False
        else:
            created = True
        # Before the index lists the file: never advertise metadata that is not served.
        companions = [
            (entry.metadata_dist, upload.metadata_path),
            (entry.dist.companion(ATTESTATIONS_SUFFIX), upload.attestations_path),
        ]
        for companion, source in companions:
            if source is not None:
                with contextlib.suppress(FileExists):  # left by an interrupted attempt
                    self.backend.write_file(companion, source)
        return created

    def set_yanked(self, project: str, target: str, reason: str | None) -> list[str]:
        """Yank (PEP 592) the files of ``project`` that ``target`` names (a version or a
        filename) with ``reason``, or unyank them with ``reason=None``; their filenames."""
        self.check_listing_changes()
        normalized = normalize_project(project)

        def selected(index: PackageIndex) -> list[IndexEntry]:
            return [
                entry
                for entry in index.files_of(normalized) or []
                if target == entry.filename or _same_version(target, entry.version)
            ]

        with self.lock:
            stored = self._fetch_remote()
            if not selected(stored.index):
                raise NotFound(f"No file of project {normalized!r} matches {target!r}.")
            changed = self._update_remote(
                lambda index: index.with_entries(
                    dataclasses.replace(entry, yanked=reason) for entry in selected(index)
                ),
                "yanked" if reason is not None else "unyanked",
                stored,
            )
        filenames = [entry.filename for entry in selected(changed)]
        log.info(
            "repository %s: %s %s",
            self.name,
            "yanked" if reason is not None else "unyanked",
            ", ".join(filenames),
        )
        return filenames

    def set_status(self, project: str, status: ProjectStatus) -> ProjectStatus:
        """Set the status (PEP 792) of a project the repository has; the status it had."""
        self.check_listing_changes()
        normalized = normalize_project(project)
        with self.lock:
            stored = self._fetch_remote()
            if stored.index.files_of(normalized) is None:
                raise NotFound(f"No project named {normalized!r} in {self.name!r}.")
            self._update_remote(
                lambda index: index.with_status(normalized, status), "status", stored
            )
        log.info("repository %s: %s is %s", self.name, normalized, status.status)
        return stored.index.status_of(normalized)

    def rebuild_index(self, progress: Progress | None = None) -> PackageIndex:
        """Rebuild the remote index from what the backend stores, and the local copy with it;
        ``progress`` counts the files read."""
        with self.lock:
            return self._update_remote(
                lambda index: build_index(self.backend, index, progress=progress), "rebuilt"
            )

    def _fetch_remote(self) -> StoredIndex:
        """The remote index, for a change: a store failure is answered 503."""
        try:
            stored = self._read_remote()
        except OSError as error:
            outages.store_failed(self, error)
            raise StorageUnavailable from error
        outages.store_answered(self)
        return stored

    def _read_remote(self) -> StoredIndex:
        self._last_remote = read_remote(
            self.backend,
            self._shards,
            label=f"the remote index of repository {self.name!r}",
            last=self._last_remote,
        )
        return self._last_remote

    def _update_remote(
        self,
        change: Callable[[PackageIndex], PackageIndex],
        reason: str,
        read: StoredIndex | None = None,
    ) -> PackageIndex:
        """Apply ``change`` to the remote index (``read``, when the caller just fetched it),
        again on a fresh copy when another server wrote in between, then store the result
        locally and tell the plugins what changed, and why (``reason``)."""
        for attempt in range(INDEX_WRITE_ATTEMPTS):
            stored = read if read is not None and attempt == 0 else self._fetch_remote()
            changed = change(stored.index)
            if stored.root is not None and changed == stored.index:  # e.g. nothing new
                self._store_local(stored)
                return changed
            try:
                written = write_remote(self.backend, stored, changed, self._shards)
            except IndexConflict:
                time.sleep(random.uniform(0, 0.05 * 2**attempt))
                continue
            except OSError as error:
                outages.store_failed(self, error)
                raise StorageUnavailable from error
            self._last_remote = written
            self._store_local(written)
            events.announce(events.difference(self.name, reason, stored.index, changed))
            return changed
        raise StorageUnavailable(
            f"the remote index of repository {self.name!r} kept changing while being written; "
            "try again"
        )

    def _sync_local(self) -> None:
        """Make the local index a copy of the remote one (and tell the plugins that listen
        what changed: only then is the local index read before and after)."""
        before = self.index if events.listened() else None
        sync_local(self.backend, self.local, label=f"the remote index of {self.name!r}")
        self.synced_marker.touch()
        if before is not None:
            events.announce(events.difference(self.name, "synced", before, self.index))

    def _store_local(self, stored: StoredIndex) -> None:
        """Make ``stored`` the local index and record the time; an unchanged root is left
        alone, so no worker reloads it."""
        self.local.store(stored.index, stored.part_names)
        self.synced_marker.touch()

    @staticmethod
    def _same_file_or_conflict(uploaded_sha256: str, stored_sha256: str, filename: str) -> bool:
        if uploaded_sha256 != stored_sha256:
            raise Conflict(
                f"File already exists: {filename!r} is already stored with different content; "
                "a published file never changes, so upload it under a new version."
            )
        return False
