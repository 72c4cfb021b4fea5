"""The audit trail: every write a server takes, one JSON line per event, per repository.

Events go to ``ROOT/audit/<repository>.jsonl`` (mode 0600), appended by whichever worker took
the request: each line is written by one ``write`` to a file opened for appending, so lines of
several workers never mix. A line holds the time (UTC), the repository, the action, what it
acted on (project, file, sha256, token id...), the identity that did it (a token and its note,
a user, "secrets: <repository>" for the repository's write secret) and the client's address;
never a secret. ``private_pypi audit`` reads it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from private_pypi_core.backend import check_repository_name


class AuditLog:
    def __init__(self, root: Path) -> None:
        self.folder = root / "audit"

    def record(
        self, repository: str, action: str, *, identity: str, client: str, **details: Any
    ) -> None:
        event = {
            "time": datetime.now(UTC).isoformat(timespec="seconds"),
            "repository": repository,
            "action": action,
            **{key: value for key, value in details.items() if value is not None},
            "identity": identity,
            "client": client,
        }
        line = json.dumps(event, separators=(",", ":")).encode() + b"\n"
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self._path(repository), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)

    def events(
        self, repository: str, *, project: str | None = None, since: datetime | None = None
    ) -> Iterator[dict[str, Any]]:
        """The events of ``repository``, oldest first, of ``project`` and from ``since`` only
        when given."""
        try:
            lines = self._path(repository).read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return
        for line in lines:
            event = json.loads(line)
            if project is not None and event.get("project") != project:
                continue
            if since is not None and datetime.fromisoformat(event["time"]) < since:
                continue
            yield event

    def _path(self, repository: str) -> Path:
        return self.folder / f"{check_repository_name(repository)}.jsonl"


def describe(event: dict[str, Any]) -> str:
    """One line for a person: when, what, on what, by whom, from where."""
    subject = " ".join(
        str(event[key]) for key in ("project", "filename", "version", "token") if key in event
    )
    digest = f" sha256={event['sha256']}" if "sha256" in event else ""
    reason = f" ({event['reason']})" if event.get("reason") else ""
    return (
        f"{event['time']} {event['action']} {subject}{digest}{reason} "
        f"by {event['identity']} from {event['client']}"
    )
