"""A proxy repository: the pages and files of an upstream simple index, cached in the
repository's own store and served as its own.

A project's page is fetched when first asked for, and again, conditionally, once it is older
than ``page_ttl``; its files become the project's entries in the repository's index (only the
project's shard is written: the index is stored in parts where the backend can). What this
server last fetched, and when, is kept under ROOT/cache/<name>/upstream/, shared by its
workers. When the upstream fails, a page fetched before is served as it was, with a
``Warning`` header; a page never fetched is a 502 (504 on a timeout).

The index keeps every upstream file; ``index`` offers the clients those that ``allow``,
``deny`` and the cooldown (``min_upload_age``) let through, as of the current minute.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

import filelock

from private_pypi_core import metrics
from private_pypi_core.auth_provider import ProviderSettings
from private_pypi_core.backend import BackendConfig, DistFile
from private_pypi_core.errors import Forbidden, NotFound
from private_pypi_core.files import atomic_write
from private_pypi_core.index import IndexEntry, PackageIndex, Shard, shard_key
from private_pypi_core.metadata import COMPANION_SUFFIX
from private_pypi_core.proxy.fetch import CachingBackend, Source
from private_pypi_core.proxy.settings import ProxySettings, shown
from private_pypi_core.proxy.upstream import Page, Upstream, UpstreamFailed, Validators
from private_pypi_core.repository import LOCK_TIMEOUT_SECONDS, Repository, Upload

log = logging.getLogger(__name__)

# RFC 9111 deprecates the Warning header, yet it is the one a person reading headers knows.
STALE_WARNING = '110 private-pypi "Response is Stale: the upstream index failed"'
FILTER_SECONDS = 60  # the cooldown lets files through by the minute
REMEMBERED_PAGES = 50_000  # per worker: the pages it knows need no fetch yet


@dataclass(frozen=True)
class Fetched:
    """When this server last fetched a project's page, and its validators."""

    at: float  # epoch seconds
    validators: Validators

    def to_bytes(self) -> bytes:
        record = {
            "at": self.at,
            "etag": self.validators.etag,
            "last_modified": self.validators.last_modified,
        }
        return json.dumps(record).encode()

    @classmethod
    def read(cls, path: Path) -> Fetched | None:
        try:
            record = json.loads(path.read_bytes())
            validators = Validators(record["etag"], record["last_modified"])
            return cls(float(record["at"]), validators)
        except (OSError, ValueError, KeyError, TypeError):
            return None  # never fetched (or a record cut short): fetch again


class ProxyRepository(Repository):
    """A repository whose projects are those of an upstream index."""

    def __init__(
        self,
        config: BackendConfig,
        root: Path,
        proxy: ProxySettings,
        *,
        admin_secret: str | None = None,
        auth: Mapping[str, ProviderSettings] | None = None,
    ) -> None:
        super().__init__(config, root, admin_secret=admin_secret, auth=auth)
        self.proxy = proxy
        self.upstream = Upstream(proxy)
        temp_dir = root / "tmp"
        temp_dir.mkdir(mode=0o700, exist_ok=True)
        self.backend = self.cache = CachingBackend(
            self.backend, self.upstream, self._source, self.folder, temp_dir, self._sized
        )
        self.fetched_folder = self.folder / "upstream"
        self.fetched_folder.mkdir(mode=0o700, exist_ok=True)
        self._fresh_until: OrderedDict[str, float] = OrderedDict()  # by project, this worker
        self._remembering = threading.Lock()
        self._offered: tuple[PackageIndex, int, PackageIndex] | None = None

    @property
    def index(self) -> PackageIndex:
        """The files offered: those ``allow``, ``deny`` and the cooldown let through."""
        stored = self.local.current()
        if not self._filters():
            return stored
        minute = int(time.time() // FILTER_SECONDS)
        if self._offered is not None and self._offered[0] is stored and self._offered[1] == minute:
            return self._offered[2]
        offered = self._offer(stored, datetime.now(UTC) - self.proxy.cooldown)
        self._offered = (stored, minute, offered)
        return offered

    def _filters(self) -> bool:
        return bool(self.proxy.cooldown) or self.proxy.allow != ["*"] or bool(self.proxy.deny)

    def _offer(self, stored: PackageIndex, cutoff: datetime) -> PackageIndex:
        shards = {}
        for key, shard in stored.shards.items():
            entries = {n: e for n, e in shard.entries.items() if self._offers(e, cutoff)}
            if len(entries) == len(shard.entries):
                shards[key] = shard
            elif entries:
                shards[key] = Shard(entries)
        return PackageIndex(shards, stored.tokens, stored.statuses)

    def _offers(self, entry: IndexEntry, cutoff: datetime) -> bool:
        if not self.proxy.offers(entry.project):
            return False
        if not self.proxy.cooled(entry.project):
            return True
        if entry.upload_time is None:
            return self.proxy.without_upload_time == "offer"
        return entry.upload_time <= cutoff

    def cache_file(self, dist: DistFile) -> None:
        self.cache.ensure_cached(dist)

    def waits_on_upstream(self, project: str) -> bool:
        return True

    def page_is_fresh(self, project: str) -> bool:
        return self._fresh_until.get(project, 0.0) > time.time()

    def refresh_project(self, project: str) -> str | None:
        """Make the index hold the upstream's current page of the normalised ``project``,
        unless fetched less than ``page_ttl`` ago; a ``Warning`` header's value when it holds
        a page the upstream failed to renew. ``NotFound`` for a project not mirrored,
        ``UpstreamFailed`` when the upstream fails for a page never fetched."""
        if not self.proxy.offers(project):
            raise NotFound(
                f"{project!r} is not offered by {self.name!r}: its proxy settings leave it out."
            )
        if self.page_is_fresh(project) or self._still_fresh(project):
            return None
        # One lock per shard of names: a fixed set of files, however many names are asked for.
        lock = filelock.FileLock(
            self.fetched_folder / f"{shard_key(project)}.lock", timeout=LOCK_TIMEOUT_SECONDS
        )
        with lock:  # one fetch of a page at a time in this server; the others wait for it
            if self._still_fresh(project):
                return None
            return self._fetch_page(project)

    def _still_fresh(self, project: str) -> bool:
        fetched = Fetched.read(self._fetched_path(project))
        if fetched is None:
            return False
        until = fetched.at + self.proxy.ttl.total_seconds()
        if until <= time.time():
            return False
        self._remember(project, until)
        return True

    def _remember(self, project: str, until: float) -> None:
        """Note in this worker that ``project``'s page needs no fetch until ``until``."""
        with self._remembering:
            self._fresh_until[project] = until
            self._fresh_until.move_to_end(project)
            if len(self._fresh_until) > REMEMBERED_PAGES:
                self._fresh_until.popitem(last=False)

    def _fetch_page(self, project: str) -> str | None:
        listed = self.local.current().files_of(project)
        previous = Fetched.read(self._fetched_path(project))
        try:
            page = self.upstream.page(
                project, previous.validators if previous and listed is not None else None
            )
        except UpstreamFailed as error:
            metrics.record_proxy_page(self.name, "failed" if listed is None else "stale")
            if listed is None:
                raise
            log.warning("%s: %s; serving the page fetched before", self.name, error)
            return STALE_WARNING
        missing = page.files is None and not page.not_modified
        outcome = "not_modified" if page.not_modified else "missing" if missing else "fetched"
        metrics.record_proxy_page(self.name, outcome)
        if not page.not_modified:
            self._store_page(project, page, listed or [])
        now = time.time()
        if missing:
            # No such project: remembered by this worker alone, so names made up by the
            # thousand leave no file behind.
            self._fetched_path(project).unlink(missing_ok=True)
        else:
            fetched = Fetched(now, page.validators)
            atomic_write(self._fetched_path(project), fetched.to_bytes(), sync_folder=False)
        self._remember(project, now + self.proxy.ttl.total_seconds())
        return None

    def _store_page(self, project: str, page: Page, listed: list[IndexEntry]) -> None:
        sizes = {entry.sha256: entry.size for entry in listed}  # learned by caching (``_sized``)
        files = sorted(
            (
                entry if entry.size else dataclasses.replace(entry, size=sizes.get(entry.sha256, 0))
                for entry in page.files or []
            ),
            key=lambda entry: entry.filename,
        )
        if files != listed:
            with self.lock:
                self._update_remote(lambda index: index.with_project(project, files), "proxied")
            log.info(
                "%s: %s has %d files at %s",
                self.name,
                project,
                len(files),
                shown(self.proxy.upstream),
            )

    def _fetched_path(self, project: str) -> Path:
        return self.fetched_folder / f"{project}.json"

    def _source(self, dist: DistFile) -> Source | None:
        """Where a listed file (or its core metadata) not yet cached comes from."""
        is_metadata = dist.filename.endswith(COMPANION_SUFFIX)
        filename = dist.filename.removesuffix(COMPANION_SUFFIX) if is_metadata else dist.filename
        entry = self.local.current().entry(filename, dist.project)
        if entry is None or entry.url is None:
            return None
        if is_metadata:
            if entry.metadata_sha256 is None:
                return None
            return Source(entry.url + COMPANION_SUFFIX, entry.metadata_sha256, 0)
        return Source(entry.url, entry.sha256, entry.size)

    def _sized(self, dist: DistFile, size: int) -> None:
        """List the size of a file cached from an upstream page that gave none."""

        def change(index: PackageIndex) -> PackageIndex:
            entry = index.entry(dist.filename, dist.project)
            if entry is None or entry.size:
                return index
            return index.with_entry(dataclasses.replace(entry, size=size))

        listed = self.local.current().entry(dist.filename, dist.project)
        if listed is None or listed.size:  # core metadata, or a size already learned
            return
        with self.lock:
            self._update_remote(change, "proxied")

    def check_uploads(self) -> NoReturn:
        raise Forbidden(
            f"Repository {self.name!r} mirrors {shown(self.proxy.upstream)}: it takes no uploads."
        )

    def check_listing_changes(self) -> NoReturn:
        raise Forbidden(
            f"Repository {self.name!r} mirrors {shown(self.proxy.upstream)}: its files, their "
            "yanks and statuses are the upstream's."
        )

    def publish(self, upload: Upload) -> bool:
        self.check_uploads()
