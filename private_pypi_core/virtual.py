"""A virtual repository: the members it lists, in order, under one URL and one credential.

No dependency confusion, by construction: a project that any private member (one that is not
a proxy) has is answered from the private members alone; a proxy member is asked only for
projects no private member has, unless the operator declared the project in the virtual
repository's ``tracks`` (PEP 708): then its files are merged with the proxies' and its page
says so. Members are asked private ones first, each in the configured order, then proxies;
where two list a file of the same name, the first one's is served.
Uploads go to the member named by ``upload_to``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from private_pypi_core.auth_provider import ProviderSettings
from private_pypi_core.backend import Backend, BackendConfig, DistFile
from private_pypi_core.dists import urls_for
from private_pypi_core.errors import ConfigError, Forbidden, NotFound
from private_pypi_core.index import (
    IndexEntry,
    PackageIndex,
    ProjectStatus,
    Shard,
    without_companion_suffix,
)
from private_pypi_core.proxy.repository import ProxyRepository
from private_pypi_core.proxy.upstream import UpstreamFailed
from private_pypi_core.repository import Repository, Upload
from private_pypi_core.virtual_backend import VirtualBackend, VirtualConfig

_MergedShard = tuple[tuple[Shard | None, ...], Shard | None, dict[str, ProjectStatus]]


class VirtualRepository(Repository):
    def __init__(
        self,
        config: BackendConfig,
        root: Path,
        *,
        admin_secret: str | None = None,
        auth: Mapping[str, ProviderSettings] | None = None,
    ) -> None:
        super().__init__(config, root, admin_secret=admin_secret, auth=auth)
        assert isinstance(config, VirtualConfig)
        self.virtual = config
        routes = VirtualBackend(config, root)
        routes.member_of = self._member_backend
        self.backend = routes
        self.private: list[Repository] = []
        self.proxies: list[ProxyRepository] = []
        self.upload_member: Repository | None = None
        self._merged: tuple[tuple[PackageIndex, ...], PackageIndex] | None = None
        # By shard key: the members' shards it was merged from, the merged shard, statuses.
        self._merged_shards: dict[str, _MergedShard] = {}

    def attach(self, repositories: Mapping[str, Repository]) -> None:
        """Find the members among the configured ``repositories``; ``ConfigError`` names a
        member that is missing, virtual itself, or a proxy chosen for uploads."""
        where = f"repository [{self.name}]"
        for name in self.virtual.members:
            member = repositories.get(name)
            if member is None:
                raise ConfigError(f"{where}: member {name!r} is not a configured repository")
            if member is self:
                raise ConfigError(f"{where}: lists itself among its members")
            if isinstance(member, VirtualRepository):
                raise ConfigError(f"{where}: member {name!r} is virtual itself")
            if isinstance(member, ProxyRepository):
                self.proxies.append(member)
            else:
                self.private.append(member)
        if self.virtual.upload_to:
            member = repositories[self.virtual.upload_to]
            if isinstance(member, ProxyRepository):
                raise ConfigError(
                    f"{where}: upload_to {member.name!r} is a proxy, which takes no uploads"
                )
            self.upload_member = member

    @property
    def members(self) -> list[Repository]:
        return [*self.private, *self.proxies]

    def tracked(self, project: str) -> bool:
        """Whether the operator declared ``project`` to be merged with the proxies'."""
        return bool(urls_for(self.virtual.tracks, project))

    @property
    def index(self) -> PackageIndex:
        """The members' indexes merged by the rule above; merged again, shard by shard, only
        where a member's index changed."""
        indexes = tuple(member.index for member in self.members)
        merged = self._merged
        if merged is not None and all(a is b for a, b in zip(merged[0], indexes, strict=True)):
            return merged[1]
        shards: dict[str, Shard] = {}
        statuses: dict[str, ProjectStatus] = {}
        for key in sorted({key for index in indexes for key in index.shards}):
            parts = tuple(index.shards.get(key) for index in indexes)
            cached = self._merged_shards.get(key)
            if cached is None or any(a is not b for a, b in zip(cached[0], parts, strict=True)):
                cached = self._merged_shards[key] = (parts, *self._merge(parts, indexes))
            if cached[1] is not None:
                shards[key] = cached[1]
            statuses.update(cached[2])
        index = PackageIndex(shards, {}, statuses)
        self._merged = (indexes, index)
        return index

    def _merge(
        self, parts: Sequence[Shard | None], indexes: Sequence[PackageIndex]
    ) -> tuple[Shard | None, dict[str, ProjectStatus]]:
        """One shard of the merged index, from the members' shards of that key."""
        private_count = len(self.private)
        projects = {project for part in parts if part is not None for project in part.projects}
        entries: dict[str, IndexEntry] = {}
        statuses: dict[str, ProjectStatus] = {}
        for project in projects:
            having = [i for i, part in enumerate(parts) if part and project in part.projects]
            private = [i for i in having if i < private_count]
            if private and not self.tracked(project):
                having = private
            for i in having:
                for entry in parts[i].projects[project]:  # type: ignore[union-attr]
                    entries.setdefault(entry.filename, entry)
            status = next(
                (indexes[i].statuses[project] for i in having if project in indexes[i].statuses),
                None,
            )
            if status is not None:
                statuses[project] = status
        return (Shard(entries) if entries else None), statuses

    def _answering(self, project: str) -> list[Repository]:
        """The members whose files of ``project`` the virtual repository serves, in order."""
        private = [m for m in self.private if m.index.files_of(project) is not None]
        if private and not self.tracked(project):
            return private
        return [*private, *self.proxies]

    def _member_backend(self, dist: DistFile) -> Backend:
        return self._member_of(dist).backend

    def _member_of(self, dist: DistFile) -> Repository:
        """The member serving ``dist`` (or the file it is a companion of)."""
        filename = without_companion_suffix(dist.filename)
        for member in self._answering(dist.project):
            if member.index.entry(filename, dist.project) is not None:
                return member
        raise FileNotFoundError(dist.filename)

    def cache_file(self, dist: DistFile) -> None:
        self._member_of(dist).cache_file(dist)

    def waits_on_upstream(self, project: str) -> bool:
        return any(member.waits_on_upstream(project) for member in self._answering(project))

    def page_is_fresh(self, project: str) -> bool:
        members = self._answering(project)
        return all(member.page_is_fresh(project) for member in members)

    def refresh_project(self, project: str) -> str | None:
        """Renew the proxies' pages of ``project``, unless private members answer it alone.
        A proxy that fails is an error only when no member has the project to answer."""
        warning: str | None = None
        failure: UpstreamFailed | None = None
        for member in self._answering(project):
            try:
                warning = member.refresh_project(project) or warning
            except UpstreamFailed as error:
                failure = failure or error
            except NotFound:  # left out by that proxy's allow and deny
                continue
        if failure is not None and self.index.files_of(project) is None:
            raise failure
        return warning

    def sync_due(self) -> bool:
        return False  # nothing of its own to sync: each member syncs itself

    def check_listing_changes(self) -> None:
        raise Forbidden(
            f"Repository {self.name!r} is virtual: yank or set a status in its member "
            f"that has the project ({', '.join(self.virtual.members)})."
        )

    def check_token_changes(self) -> None:
        raise Forbidden(
            f"Repository {self.name!r} is virtual: it keeps no API tokens (its members do)."
        )

    def check_uploads(self) -> None:
        if self.upload_member is None:
            raise Forbidden(
                f"Repository {self.name!r} is virtual and names no member for uploads "
                f"(upload_to): upload to one of {', '.join(self.virtual.members)}."
            )

    def publish(self, upload: Upload) -> bool:
        self.check_uploads()
        assert self.upload_member is not None
        return self.upload_member.publish(upload)
