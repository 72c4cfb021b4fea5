"""Where a repository's index is kept: in its backend (the remote index) and under the server's
ROOT (the local copy every worker reads), each as one root file and the parts it names.

The remote index is one file (``PackageIndex.to_bytes``) on a backend without index parts, and
a root with a part per shard (``index``'s format 4) on one with them. The local copy is always
a root and parts, so a worker reloads only the shards that changed, whatever the backend.
Parts are never rewritten, so a part parsed once is good for as long as a root names it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar, cast

from private_pypi_core.backend import Backend, IndexFile
from private_pypi_core.errors import ConfigError
from private_pypi_core.files import FileVersion, atomic_write, file_version, fsync_dir
from private_pypi_core.index import PART_NAME, IndexRoot, PackageIndex, Shard

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")

# A root whose parts are gone was replaced meanwhile: read the new one, this many times.
READ_ATTEMPTS = 5
PARALLEL_PARTS = 16  # parts read or written at once, for a whole index (a first sync)
LOCAL_ROOT_FILENAME = "index.json"
LOCAL_PARTS_FOLDER = "index-parts"


@dataclass(frozen=True)
class StoredIndex:
    """An index as read from the backend, with what it takes to replace it."""

    index: PackageIndex
    root: IndexFile | None  # the remote index file as read; None when there is none yet
    part_names: Mapping[str, str] = field(default_factory=dict)  # by shard key; {}: one file


class ShardCache:
    """Parsed shards by part name, those of the last root loaded."""

    def __init__(self) -> None:
        self._shards: dict[str, Shard] = {}

    def load(
        self, names: Mapping[str, str], read: Callable[[str], bytes | None], label: str
    ) -> dict[str, Shard] | None:
        """The shards ``names`` names, by shard key: known ones from memory, others read and
        parsed; ``None`` when a part is missing (its root was replaced meanwhile)."""
        shards = {}
        for key, name in names.items():
            shard = self._shards.get(name)
            if shard is None:
                data = read(name)
                if data is None:
                    return None
                shard = Shard.from_bytes(data, label=f"{label}, part {name}")
            shards[key] = shard
        self.remember(names, shards)
        return shards

    def remember(self, names: Mapping[str, str], shards: Mapping[str, Shard]) -> None:
        self._shards = {names[key]: shard for key, shard in shards.items()}


def new_part_name(key: str) -> str:
    """A name no part ever had: two servers never write, nor delete, the same part."""
    return f"{key}-{secrets.token_hex(16)}"


def read_remote(
    backend: Backend, shards: ShardCache, *, label: str, last: StoredIndex | None = None
) -> StoredIndex:
    """The remote index; ``last`` (an index read or written before) is answered again when
    the stored root has not changed, so an index in one file is parsed once per change."""
    for _ in range(READ_ATTEMPTS):
        root = backend.read_index()
        if root is None:
            return StoredIndex(PackageIndex(), None)
        if last is not None and last.root is not None and last.root.data == root.data:
            return StoredIndex(last.index, root, last.part_names)
        parsed = IndexRoot.from_bytes(root.data, label=label)
        if parsed.index is not None:
            return StoredIndex(parsed.index, root)
        found = shards.load(parsed.part_names, backend.read_index_part, label)
        if found is not None:
            return StoredIndex(parsed.with_shards(found), root, parsed.part_names)
    raise OSError(f"{label}: its parts kept being replaced while it was read")


def write_remote(
    backend: Backend, read: StoredIndex, changed: PackageIndex, shards: ShardCache
) -> StoredIndex:
    """Replace the remote index ``read`` with ``changed``; ``IndexConflict`` when another
    server replaced it first. In parts: the changed shards as new parts, then the root, then
    the parts it no longer names are deleted."""
    if not backend.stores_index_parts:
        data = changed.to_bytes()
        backend.write_index(data, replaces=read.root)
        return StoredIndex(changed, IndexFile(data, version=""))
    names: dict[str, str] = {}
    new: dict[str, Shard] = {}
    for key, shard in changed.shards.items():
        name = read.part_names.get(key)
        if name is None or read.index.shards.get(key) != shard:
            name = new_part_name(key)
            new[name] = shard
        names[key] = name
    try:
        in_parallel(lambda name: backend.write_index_part(name, new[name].to_bytes()), list(new))
        data = changed.root_bytes(names)
        backend.write_index(data, replaces=read.root)
    except BaseException:
        _delete_parts(backend, new)  # no root names them
        raise
    shards.remember(names, changed.shards)
    _delete_parts(backend, set(read.part_names.values()) - set(names.values()))
    return StoredIndex(changed, IndexFile(data, version=""), names)


def sync_local(backend: Backend, local: LocalIndex, *, label: str) -> None:
    """Make the local copy that of the remote index. The parts the local copy has already are
    neither read nor parsed again (parts never change): a restart reads the root alone."""
    for _ in range(READ_ATTEMPTS):
        root = backend.read_index()
        if root is None:
            local.store(PackageIndex(), {})
            return
        parsed = IndexRoot.from_bytes(root.data, label=label)
        if parsed.index is not None:
            local.store(parsed.index, {})
            return
        if local.copy(root.data, parsed.part_names, backend.read_index_part, label=label):
            return
    raise OSError(f"{label}: its parts kept being replaced while it was read")


def in_parallel(work: Callable[[T], R], items: list[T]) -> list[R]:
    """``work`` done on each item, on several threads when there are many: a store answers
    them, or the disk syncs them, at once (1,024 parts written one by one take seconds)."""
    if len(items) <= 1:
        return [work(item) for item in items]
    with ThreadPoolExecutor(min(PARALLEL_PARTS, len(items)), thread_name_prefix="parts") as pool:
        return list(pool.map(work, items))


def _delete_parts(backend: Backend, names: Iterable[str]) -> None:
    """Delete parts no root names any more; one left by a failure costs only space."""
    for name in names:
        try:
            backend.delete_index_part(name)
        except OSError as error:
            # Not a warning: the store's failure is the outage's, logged once as such.
            log.debug("could not delete index part %s, left in the store: %s", name, error)


class LocalIndex:
    """The local copy of a repository's index: ``index.json``, a root, and the parts it names
    in ``index-parts/``, in the repository's folder under ROOT. One process writes it at a
    time (under the repository's lock); every worker reads it."""

    def __init__(self, folder: Path, shards: ShardCache, *, label: str) -> None:
        """``shards`` may be shared with the remote index's reader: where the backend stores
        parts, the local copy's parts are the same, and each is parsed once."""
        self.root_path = folder / LOCAL_ROOT_FILENAME
        self.parts_folder = folder / LOCAL_PARTS_FOLDER
        self.label = label
        self._root_file = str(self.root_path)  # stat() per request: skip Path
        self._shards = shards
        self._index = PackageIndex()
        self._version: FileVersion | None = None

    def current(self) -> PackageIndex:
        """The local index, reloaded when another worker (or a sync) replaced it."""
        version = file_version(self._root_file)
        if version is None or version == self._version:
            return self._index
        for _ in range(READ_ATTEMPTS):
            version = file_version(self._root_file)
            try:
                data = self.root_path.read_bytes()
            except FileNotFoundError:
                return self._index
            root = IndexRoot.from_bytes(data, label=self.label)
            if root.index is not None:  # written by an older version, in one file
                index = root.index
            else:
                found = self._shards.load(root.part_names, self._read_part, self.label)
                if found is None:
                    continue
                index = root.with_shards(found)
            self._index, self._version = index, version
            return index
        raise OSError(f"{self.label}: its parts kept being replaced while it was read")

    def store(self, index: PackageIndex, part_names: Mapping[str, str]) -> None:
        """Make ``index`` the local copy, its shards in the parts ``part_names`` names (those of
        the remote index), or, when empty (a remote index in one file), in parts named by
        their contents, so an unchanged shard keeps its part.

        The parts the current root names exist (a root is written after its parts, and a part
        deleted once no root names it): only the others are written, then those it no longer
        names deleted.
        """
        names = dict(part_names)
        for key, shard in index.shards.items():
            if key not in names:
                names[key] = f"{key}-{shard.digest[:32]}"
        try:
            current = self.root_path.read_bytes()
        except FileNotFoundError:
            current = b""
        root = index.root_bytes(names)
        if current == root:
            self._remember(index, names)
            return
        existing = self._part_names_of(current)
        new = {key: name for key, name in names.items() if name not in (existing or ())}
        in_parallel(
            lambda key: atomic_write(
                self.parts_folder / new[key],
                index.shards[key].to_bytes(),
                mode=0o600,
                sync_folder=False,
            ),
            list(new),
        )
        if new:  # the parts' names are durable before a root names them
            fsync_dir(self.parts_folder)
        atomic_write(self.root_path, root, mode=0o600)
        if existing is None:  # a first copy, or one in one file: whatever is there goes
            self._delete_parts_but(set(names.values()))
        else:
            for name in existing - set(names.values()):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.parts_folder / name)
        self._remember(index, names)

    def copy(
        self,
        root: bytes,
        part_names: Mapping[str, str],
        read_part: Callable[[str], bytes | None],
        *,
        label: str,
    ) -> bool:
        """Make the remote root ``root``, which names ``part_names``, the local copy: the parts
        it does not have yet are read with ``read_part`` and checked first, so a broken remote
        index never replaces a good copy. ``False`` when a part is gone (``root`` was
        replaced meanwhile)."""
        try:
            current = self.root_path.read_bytes()
        except FileNotFoundError:
            current = b""
        if current == root:
            return True
        existing = self._part_names_of(current) or set()
        missing = sorted(set(part_names.values()) - existing)
        fetched = in_parallel(read_part, missing)
        if any(data is None for data in fetched):
            return False
        parts = dict(zip(missing, cast(list[bytes], fetched), strict=True))
        for name, data in parts.items():
            Shard.from_bytes(data, label=f"{label}, part {name}")
        in_parallel(
            lambda name: atomic_write(
                self.parts_folder / name, parts[name], mode=0o600, sync_folder=False
            ),
            missing,
        )
        if missing:
            fsync_dir(self.parts_folder)
        atomic_write(self.root_path, root, mode=0o600)
        self._delete_parts_but(set(part_names.values()))
        return True

    def _remember(self, index: PackageIndex, names: Mapping[str, str]) -> None:
        self._shards.remember(names, index.shards)
        # This process need not read what it just wrote.
        self._index, self._version = index, file_version(self._root_file)

    def _part_names_of(self, root: bytes) -> set[str] | None:
        """The parts a local root names; ``None`` when it names none (none yet, or a copy in
        one file written by an older version) or cannot be read."""
        try:
            part_names = IndexRoot.from_bytes(root, label=self.label).part_names
        except ConfigError:
            return None
        return set(part_names.values()) or None

    def _read_part(self, name: str) -> bytes | None:
        try:
            return (self.parts_folder / name).read_bytes()
        except FileNotFoundError:
            return None

    def _delete_parts_but(self, kept: set[str]) -> None:
        with contextlib.suppress(FileNotFoundError), os.scandir(self.parts_folder) as entries:
            for entry in entries:
                if PART_NAME.fullmatch(entry.name) and entry.name not in kept:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)
