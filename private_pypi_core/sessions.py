"""Browser sessions, kept on the server so that every worker ends them at once.

A session is a small file ``ROOT/sessions/<id>`` (mode 0600) naming its repository, when it
began, and an HMAC of the repository's secrets as they were at login. It ends

- at logout (the file is removed),
- when one of its repository's secrets is rotated (re-initialisation, a restart with another
  config): the secrets no longer match the HMAC,
- ``max_age`` seconds after login, however often it is used (a lower ``max_age`` at a restart
  ends older sessions too).

The cookie carries the id and its signature under a key kept in ROOT, so a forged cookie is
refused without touching the disk.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from private_pypi_core.files import atomic_write, create_exclusive

SESSION_COOKIE = "private_pypi_session"
SESSION_ID = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True)
class Session:
    id: str
    repository: str
    secrets_mac: str
    started: float


class SessionStore:
    def __init__(self, root: Path, max_age: int) -> None:
        self.folder = root / "sessions"
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        key_path = root / "session.key"
        create_exclusive(key_path, secrets.token_bytes(32))
        self._key = key_path.read_bytes()
        self.max_age = max_age

    def start(self, repository: str, secrets_digest: bytes) -> str:
        """A new session of ``repository``; the cookie value that names it."""
        self._remove_expired()
        session_id = secrets.token_hex(16)
        record = {
            "repository": repository,
            "secrets_mac": self._mac(secrets_digest),
            "started": time.time(),
        }
        atomic_write(self.folder / session_id, json.dumps(record).encode(), mode=0o600)
        return f"{session_id}.{self._mac(session_id.encode())}"

    def find(self, cookie: str | None) -> Session | None:
        """The live session a cookie names, else ``None``."""
        session_id = self._session_id(cookie)
        if session_id is None:
            return None
        try:
            record = json.loads((self.folder / session_id).read_bytes())
            session = Session(
                id=session_id,
                repository=str(record["repository"]),
                secrets_mac=str(record["secrets_mac"]),
                started=float(record["started"]),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if session.started + self.max_age < time.time():
            self.end(session_id)
            return None
        return session

    def holds_secrets(self, session: Session, secrets_digest: bytes) -> bool:
        """Whether the session's repository still has the secrets it was opened with."""
        return hmac.compare_digest(session.secrets_mac, self._mac(secrets_digest))

    def end(self, session_id: str) -> None:
        (self.folder / session_id).unlink(missing_ok=True)

    def end_cookie(self, cookie: str | None) -> None:
        session_id = self._session_id(cookie)
        if session_id is not None:
            self.end(session_id)

    def _session_id(self, cookie: str | None) -> str | None:
        session_id, _, signature = (cookie or "").partition(".")
        if not SESSION_ID.fullmatch(session_id):
            return None
        expected = self._mac(session_id.encode())
        return session_id if hmac.compare_digest(signature.encode(), expected.encode()) else None

    def _remove_expired(self) -> None:
        oldest = time.time() - self.max_age
        for path in self.folder.iterdir():
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                if json.loads(path.read_bytes())["started"] < oldest:
                    path.unlink()

    def _mac(self, data: bytes) -> str:
        return hmac.new(self._key, data, hashlib.sha256).hexdigest()
