"""The backend interface: what a storage plugin implements, and the types it exchanges.

A backend stores the files of one package repository and that repository's remote index file;
who may do what is for auth providers (``auth_provider``). It is plain synchronous Python: the
server calls it from a thread pool, so blocking I/O is fine. See ``hookspecs.py`` for how a
plugin registers one and ``plugins/private_pypi_fs`` for a complete example.
"""

from __future__ import annotations

import builtins
import enum
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, ClassVar

from private_pypi_core.errors import ConfigError

# A package repository's name names folders under ROOT and is the username of its credentials:
# a short slug that starts with a letter or digit (so never "." or "..", nor a flag).
REPOSITORY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def check_repository_name(name: str) -> str:
    """``name`` if it is a valid package repository name; ``ConfigError`` naming it otherwise."""
    if not REPOSITORY_NAME.fullmatch(name) or ".." in name:
        shown = name if len(name) <= 80 else f"{name[:80]}..."
        raise ConfigError(
            f"invalid package repository name {shown!r}: a name has 1 to 64 letters, digits, "
            "'-', '_' or '.', starts with a letter or digit and holds no '..'"
        )
    return name


class Access(enum.IntEnum):
    """What a secret may do in a package repository; a higher level includes the lower ones."""

    NONE = 0
    READ = 1
    WRITE = 2


@dataclass(frozen=True)
class BackendConfig:
    """Settings every package repository has; a backend subclasses it with its own fields.

    Fields map one to one to the keys of the repository's table in the config TOML. A field
    without a default is a required key. ``name`` and ``type`` are filled in by the core.
    """

    #: The keys a config posted to ``/initialize/`` without a credential may set (a server
    #: accepts such a config only while it is pristine). A subclass adds its own harmless keys
    #: and leaves out every key that names something outside the server's ROOT: a path, a
    #: URL or host the server connects to, an environment variable it reads.
    anonymous_keys: ClassVar[frozenset[str]] = frozenset(
        {
            "type",
            "max_file_bytes",
            "sync_index_interval",
            "tracks",
            "alternate_locations",
            "auth",
            "anonymous_read",
            "read_secret",
            "write_secret",
            "read_secret_sha256",
            "write_secret_sha256",
        }
    )

    name: str
    type: str
    max_file_bytes: int = 5_368_709_119
    sync_index_interval: int = 60
    # PEP 708, by project name: the index pages this repository's project tracks or mirrors.
    tracks: dict[str, list[str]] = field(default_factory=dict)
    alternate_locations: dict[str, list[str]] = field(default_factory=dict)
    # The auth providers asked, in order (see ``auth_provider``); empty: ``default_auth``.
    auth: list[str] = field(default_factory=list)
    # Requests without a credential read this repository (the first configured so).
    anonymous_read: bool = False
    # The settings of the core's "secrets" provider. Instead of a secret, its hex sha256, so a
    # leaked config opens nothing.
    read_secret: str = field(default="", repr=False)
    write_secret: str = field(default="", repr=False)
    read_secret_sha256: str = field(default="", repr=False)
    write_secret_sha256: str = field(default="", repr=False)
    # Trusted publishing: the CI workflows that may upload without a secret, each a
    # [[<repository>.trusted_publishers]] table of issuer, claims and projects, checked by
    # ``oidc.trusted_publishers``. Not an anonymous key: the server fetches an issuer's keys.
    trusted_publishers: list[dict[str, object]] = field(default_factory=list)


@dataclass(frozen=True)
class DistFile:
    """A distribution file, named as the core parsed it (``packaging`` rules)."""

    filename: str
    project: str  # normalised (PEP 503)
    version: str

    def companion(self, suffix: str) -> DistFile:
        """The file stored beside this one under ``filename + suffix`` (e.g. ``.metadata``)."""
        return DistFile(self.filename + suffix, self.project, self.version)


@dataclass(frozen=True)
class StoredFile:
    """A file as the backend lists it."""

    filename: str
    size: int
    upload_time: datetime  # timezone-aware
    sha256: str | None = None  # give it when the store knows it; the core computes it otherwise


@dataclass(frozen=True)
class IndexFile:
    """The remote index file as read, with the store's version of it.

    A version is any string that changes whenever the stored bytes change (an ETag, a blob
    sha, a content hash, a counter); the core compares versions for equality, never parses one.
    """

    data: bytes
    version: str


class FileExists(Exception):
    """The file is already stored: a backend never overwrites a file."""


class IndexConflict(Exception):
    """The remote index changed since it was read: the core reads it again and retries."""


class Backend(ABC):
    """The storage of one package repository.

    One instance serves one repository for the life of a server process (or one command).
    Methods may be called from several threads at once. On one server the core serialises
    uploads and index writes with a lock under its ROOT; several servers sharing one store are
    kept apart by the store itself: ``write_file`` never overwrites and ``write_index`` only
    replaces the version that was read.

    A file name may carry a companion suffix, such as ``.metadata`` for the core metadata
    served beside a wheel (PEP 658): store and list such files like any other.

    When the store fails (out of reach, refusing, full), raise ``OSError`` or a subclass: the
    server answers 503 with ``Retry-After`` and logs the message once per outage. Never let a
    failing store pass for an empty one, or for a missing file. Anything else a method raises
    is answered 503 too, but logged with its traceback as a mistake of the backend.
    ``private_pypi_core.testing`` checks all of this.
    """

    #: The ``type = "..."`` of the config tables this backend serves.
    type: ClassVar[str]
    #: The dataclass of this backend's settings.
    config_class: ClassVar[builtins.type[BackendConfig]] = BackendConfig
    #: The auth providers of a repository whose config names none (its ``auth`` key).
    default_auth: ClassVar[tuple[str, ...]] = ("tokens", "secrets")
    #: Whether the backend stores index parts (``read_index_part`` and the two after it).
    #: With them, the index file is a small root naming a part per shard of the index, and
    #: a change writes only the shards it touches: an upload costs the same at 100 files as
    #: at 100,000. Without them, each change rewrites the whole index file.
    stores_index_parts: ClassVar[bool] = False

    def __init__(
        self, config: BackendConfig, root: Path, *, admin_secret: str | None = None
    ) -> None:
        """``root`` is the server's ROOT folder, for any local state the backend keeps.

        ``admin_secret`` is the repository's entry of the admin secret file (the ``--secret``
        of ``update_index``): a secret with write permission the server may use for its own
        work, such as a token for a store that needs one for every call. ``None`` if not given.
        """
        self.config = config
        self.root = root
        self.admin_secret = admin_secret

    @abstractmethod
    def list_files(self) -> Iterable[StoredFile]:
        """Every stored distribution file (not the index file, nor a write in progress)."""

    @abstractmethod
    def open_file(self, dist: DistFile) -> BinaryIO:
        """A binary stream of the stored file; raise ``FileNotFoundError`` when it is absent.

        Ask the store here, not at the first read. The server opens the stream in one thread,
        calls ``read(n)`` in others, one at a time, and ``close()`` in its event loop's
        thread: the stream must not be tied to a thread. It need not seek.
        """

    @abstractmethod
    def write_file(self, dist: DistFile, source: Path) -> None:
        """Store ``source`` as ``dist``, atomically: readers and listings see all of it or
        nothing. Files come as large as ``max_file_bytes``: move them in parts, never whole
        in memory, and as several values where the store limits the size of one.

        Raise ``FileExists`` when the file is already stored; never overwrite it.
        ``source`` is a complete local file, already on disk (fsynced); the backend may not
        move, change or delete it, but may hard-link it.
        """

    @abstractmethod
    def delete_file(self, dist: DistFile) -> None:
        """Remove a stored file; raise ``FileNotFoundError`` when it is absent."""

    @abstractmethod
    def read_index(self) -> IndexFile | None:
        """The remote index file, or ``None`` when there is none yet.

        Called every ``sync_index_interval``: a remote store should make it cheap when nothing
        changed (e.g. a conditional GET with the last ETag, answered from memory on a 304).
        """

    @abstractmethod
    def write_index(self, data: bytes, replaces: IndexFile | None) -> None:
        """Replace the remote index file atomically, if it is still the version ``replaces``.

        ``replaces=None`` means "only if there is no index file yet". Raise ``IndexConflict``
        when the stored version is another (another server wrote in between).
        """

    def read_index_part(self, name: str) -> bytes | None:
        """The index part ``name``, or ``None`` when there is none of that name.

        Index parts are small files (a few hundred KB at most) beside the index file, kept
        apart from the distribution files: ``list_files`` never lists them. A name is 36
        characters of ``0-9``, ``a-f`` and ``-``. Implement the three part methods only with
        ``stores_index_parts = True``.
        """
        raise NotImplementedError

    def write_index_part(self, name: str, data: bytes) -> None:
        """Store the index part ``name``, atomically. The core never writes a name twice, and
        writes the index file that names a part only once this returns: make it durable."""
        raise NotImplementedError

    def delete_index_part(self, name: str) -> None:
        """Remove the index part ``name``; one already gone is no error."""
        raise NotImplementedError

    def download_url(self, dist: DistFile) -> str | None:
        """A URL the client may fetch the file from directly, or ``None`` to stream it.

        For stores that hand out short-lived signed URLs; the server answers a download with a
        redirect to it, so the bytes never pass through the server.
        """
        return None
