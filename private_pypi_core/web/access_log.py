"""One access log line per request, with no secret in it.

In text, Apache's combined format followed by the microseconds to the last byte (``%D``)::

    10.0.0.7 - local [02/Dec/2026:03:04:05 +0000] "GET /simple/ HTTP/1.1" 200 1234 "-" "pip/24" 1520

the client's address, ``-``, the repository the request's credential opened (``-`` for none,
or for an anonymous read), the time of arrival, the request line, the status, the body's bytes
(``-`` for none), Referer, User-Agent. In JSON, the same as fields (``logs.JsonFormatter``).

A credential is never written: not the Authorization header nor a cookie (no header is, but
Referer and User-Agent), not a username a request claimed (only a repository that opened).
Query parameters named like a credential (``token``, ``secret``, ``password``, ``key``...) or
holding a value shaped like one of ours (an API token, a generated secret) are logged as
``name=REDACTED``; so is a Referer's query and user part. Quotes, backslashes, control and
non-ASCII bytes are escaped as ``\\xHH``: a client cannot forge a line.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus, urlsplit

from private_pypi_core.tokens import PREFIX as TOKEN_PREFIX

MASK = "REDACTED"
SECRET_NAME = re.compile(r"token|secret|passw|pwd|key|auth|session|credential|signature", re.I)
# An API token, or a run of 40 hex digits or more (a generated secret has 64).
SECRET_VALUE = re.compile(rf"{TOKEN_PREFIX}|[0-9a-fA-F]{{40,}}")
_UNSAFE = re.compile(rb"[^\x20\x21\x23-\x5b\x5d-\x7e]")  # all but printable ASCII, " and \


@dataclass(frozen=True, slots=True)
class AccessEntry:
    client: str
    user: str
    arrived: float  # epoch seconds
    method: str
    target: str  # the path and masked query, escaped
    protocol: str
    status: int
    sent: int
    seconds: float
    referer: str
    user_agent: str

    def __str__(self) -> str:
        return (
            f"{self.client} - {self.user} [{_clf_time(int(self.arrived))}] "
            f'"{self.method} {self.target} {self.protocol}" {self.status} {self.sent or "-"} '
            f'"{self.referer}" "{self.user_agent}" {round(self.seconds * 1_000_000)}'
        )

    def fields(self) -> dict[str, object]:
        return {
            "client": self.client,
            "user": self.user,
            "method": self.method,
            "path": self.target,
            "protocol": self.protocol,
            "status": self.status,
            "bytes": self.sent,
            "duration_seconds": round(self.seconds, 6),
            "referer": self.referer,
            "user_agent": self.user_agent,
        }


def access_entry(
    scope: Mapping[str, Any], user: str, arrived: float, status: int, sent: int, seconds: float
) -> AccessEntry:
    """The access line of the ASGI request ``scope``, answered ``status`` with ``sent`` body
    bytes ``seconds`` after it ``arrived``; ``user``: the repository its credential opened."""
    raw_path = scope.get("raw_path") or scope["path"].encode()
    query = scope.get("query_string", b"")
    target = raw_path + b"?" + masked_query(query.decode("latin-1")).encode() if query else raw_path
    referer = user_agent = b"-"
    for name, value in scope.get("headers", ()):
        if name == b"referer":
            referer = _masked_url(value.decode("latin-1")).encode("latin-1")
        elif name == b"user-agent":
            user_agent = value
    client = scope.get("client")
    return AccessEntry(
        client=str(client[0]) if client else "-",
        user=user,
        arrived=arrived,
        method=_escaped(scope["method"].encode()),
        target=_escaped(target),
        protocol=f"HTTP/{scope.get('http_version', '1.1')}",
        status=status,
        sent=sent,
        seconds=seconds,
        referer=_escaped(referer),
        user_agent=_escaped(user_agent),
    )


def masked_query(query: str) -> str:
    """``query`` with every parameter that may hold a credential masked."""
    parts = []
    for part in query.split("&"):
        name, has_value, value = part.partition("=")
        name_text, value_text = unquote_plus(name), unquote_plus(value)
        if SECRET_VALUE.search(name_text):
            part = MASK  # a bare secret, or one used as a name
        elif has_value and (SECRET_NAME.search(name_text) or SECRET_VALUE.search(value_text)):
            part = f"{name}={MASK}"
        parts.append(part)
    return "&".join(parts)


def _masked_url(url: str) -> str:
    """A Referer without its user part, query or fragment."""
    try:
        split = urlsplit(url)
        host = split.hostname or ""
        port = f":{split.port}" if split.port else ""
    except ValueError:
        return MASK
    if not split.scheme:
        return split.path or "-"
    return f"{split.scheme}://{host}{port}{split.path}" + (f"?{MASK}" if split.query else "")


def _escaped(raw: bytes) -> str:
    return _UNSAFE.sub(lambda match: b"\\x%02x" % match.group()[0], raw).decode("ascii")


@functools.lru_cache(maxsize=4)  # lines of the same second share their time stamp
def _clf_time(second: int) -> str:
    return time.strftime("%d/%b/%Y:%H:%M:%S %z", time.localtime(second))
