"""``htpasswd``: users and passwords from an Apache htpasswd file, for any repository.

    [team]
    type = "file_system"
    auth = ["htpasswd"]

    [team.htpasswd]
    path = "team.htpasswd"    # relative to the server's ROOT
    writers = ["alice"]       # may upload and yank; every other user of the file may read

Passwords hashed with bcrypt (``htpasswd -B``) or SHA-1 (``htpasswd -s``, ``{SHA}``). The file
is read again when it changes. Users log in as ``alice`` (the first repository that knows them)
or ``alice@team``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import bcrypt

from private_pypi_core.api import (
    Access,
    AuthProvider,
    Backend,
    ConfigError,
    Credential,
    ProviderSettings,
    hookimpl,
)


@dataclass(frozen=True)
class HtpasswdSettings(ProviderSettings):
    path: str = ""
    writers: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.path:
            raise ConfigError("key 'path' must name the htpasswd file")


class HtpasswdProvider(AuthProvider):
    name = "htpasswd"
    settings_class = HtpasswdSettings

    def __init__(
        self, repository: str, settings: ProviderSettings, backend: Backend, root: Path
    ) -> None:
        super().__init__(repository, settings, backend, root)
        assert isinstance(settings, HtpasswdSettings)
        self.path = root / settings.path
        self._lock = threading.Lock()
        self._version: tuple[int, int] | None = None
        self._hashes: dict[str, str] = {}

    def authenticate(self, credential: Credential) -> Access | None:
        assert isinstance(self.settings, HtpasswdSettings)
        stored = self._users().get(credential.username or "")
        if stored is None:
            return None
        if not credential.secret or not _matches(credential.secret, stored):
            return Access.NONE
        return Access.WRITE if credential.username in self.settings.writers else Access.READ

    def _users(self) -> dict[str, str]:
        stat = os.stat(self.path)
        with self._lock:
            if (stat.st_ino, stat.st_mtime_ns) != self._version:
                lines = self.path.read_text(encoding="utf-8").splitlines()
                self._hashes = dict(
                    line.split(":", 1) for line in lines if ":" in line and not line.startswith("#")
                )
                self._version = (stat.st_ino, stat.st_mtime_ns)
            return self._hashes


def _matches(password: str, stored: str) -> bool:
    if stored.startswith(("$2y$", "$2b$", "$2a$")):
        return bcrypt.checkpw(password.encode(), stored.replace("$2y$", "$2b$", 1).encode())
    if stored.startswith("{SHA}"):
        digest = base64.b64encode(hashlib.sha1(password.encode()).digest()).decode()
        return hmac.compare_digest(digest, stored.removeprefix("{SHA}"))
    return False  # crypt and MD5-crypt are not supported


@hookimpl
def private_pypi_auth_providers() -> list[type[AuthProvider]]:
    return [HtpasswdProvider]
