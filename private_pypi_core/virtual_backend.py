"""The settings of a virtual repository (``type = "virtual"``), and the backend it answers
downloads with: each file is read from the member repository that serves it (``virtual``).

::

    [team-and-pypi]
    type = "virtual"
    members = ["team", "pypi"]      # asked in this order; "pypi" may be a proxy repository
    upload_to = "team"              # where uploads to the virtual repository go ("": refused)
    read_secret = "..."
    write_secret = "..."
    tracks = { "demo-pkg" = ["https://pypi.org/simple/demo-pkg/"] }   # merged on purpose
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, ClassVar

from private_pypi_core.backend import Backend, BackendConfig, DistFile, IndexFile, StoredFile
from private_pypi_core.errors import ConfigError
from private_pypi_core.hookspecs import hookimpl

VIRTUAL_TYPE = "virtual"


@dataclass(frozen=True)
class VirtualConfig(BackendConfig):
    anonymous_keys: ClassVar[frozenset[str]] = BackendConfig.anonymous_keys | {
        "members",
        "upload_to",
    }

    members: list[str] = field(default_factory=list)
    upload_to: str = ""

    def __post_init__(self) -> None:
        if not self.members:
            raise ConfigError("key 'members' must name at least one repository")
        if len(set(self.members)) != len(self.members):
            raise ConfigError("key 'members' names a repository twice")
        if self.upload_to and self.upload_to not in self.members:
            raise ConfigError(f"upload_to {self.upload_to!r} is not one of its members")
        if "tokens" in self.auth:
            raise ConfigError(
                "a virtual repository keeps no API tokens (its members do): "
                "leave 'tokens' out of its auth providers"
            )


class VirtualBackend(Backend):
    """Stores nothing: a download is the member's (``member_of``, set by the repository)."""

    type = VIRTUAL_TYPE
    config_class = VirtualConfig
    default_auth = ("secrets",)

    def __init__(self, config: BackendConfig, root: Path, *, admin_secret: str | None = None):
        super().__init__(config, root, admin_secret=admin_secret)
        # The member serving a file: the virtual repository sets it once it knows them.
        self.member_of: Callable[[DistFile], Backend] = _no_member

    def open_file(self, dist: DistFile) -> BinaryIO:
        return self.member_of(dist).open_file(dist)

    def download_url(self, dist: DistFile) -> str | None:
        return self.member_of(dist).download_url(dist)

    def list_files(self) -> Iterable[StoredFile]:
        return []

    def read_index(self) -> IndexFile | None:
        return None

    def write_file(self, dist: DistFile, source: Path) -> None:
        raise PermissionError("a virtual repository stores no file: its members do")

    def delete_file(self, dist: DistFile) -> None:
        raise FileNotFoundError(dist.filename)

    def write_index(self, data: bytes, replaces: IndexFile | None) -> None:
        raise PermissionError("a virtual repository stores no index: its members do")


def _no_member(dist: DistFile) -> Backend:
    raise FileNotFoundError(dist.filename)


@hookimpl
def private_pypi_backends() -> list[type[Backend]]:
    return [VirtualBackend]
