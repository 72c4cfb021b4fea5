"""One access log line per request, with no secret in it.

In text, Apache's combined format followed by the microseconds to the last byte (``%D``)::

    10.0.0.7 - local [02/Dec/2026:03:04:05 +0000] "GET /simple/ HTTP/1.1" 200 1234 "-" "pip/24" 1520

the client's address, ``-``, the repository the request's credential opened (``-`` for none,
or for an anonymous read), the time of arrival, the request line, the status, the body's bytes
(``-`` for none), Referer, User-Agent. In JSON, the same as fields (``logs.JsonFormatter``).

A credential sent as one is never written: not the Authorization header nor a cookie (no
header is, but Referer and User-Agent), not a username a request claimed (only a repository
that opened). One sent by mistake elsewhere is masked as ``REDACTED`` where it is recognised:
a path segment or User-Agent word shaped like one of ours (an API token, with or without its
prefix; 40 hex digits or more, as a generated secret's 64; a long random-looking run of
letters and digits), percent-encoded or not; a query parameter holding such a value, or named
like a credential (``token``, ``password``, ``pass``, ``pin``, ``sig``, ``key``...), as
``name=REDACTED`` (``&`` and ``;`` both separate them). Of a Referer, only its origin
(``scheme://host:port``) is written. A secret of no recognisable shape elsewhere (a path,
``?q=hunter2``) cannot be told from a search, and is written. Quotes, backslashes, control
and non-ASCII bytes are escaped as ``\\xHH``: a client cannot forge a line.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, unquote_plus, urlsplit

from private_pypi_core.tokens import PREFIX as TOKEN_PREFIX

MASK = "REDACTED"
# A parameter named like a credential: this anywhere in its name...
SECRET_NAME = re.compile(
    r"token|secret|passw|passphrase|passcode|pwd|credential|authori[sz]|oauth|session"
    r"|signature|bearer|jwt|apikey|accesskey|privatekey",
    re.I,
)
# ...or this as one of its words (``X-Api-Key``, ``pin``: not ``keyword`` nor ``shipping``).
SECRET_WORD = re.compile(r"pass|pw|pin|sig|key|auth|cred|creds|otp|sid", re.I)
_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
_RUN = "[A-Za-z0-9+/_-]"  # base64 and base64url
SECRET_VALUE = re.compile(
    rf"{TOKEN_PREFIX}"  # an API token
    r"|[0-9a-f]{12}_[A-Za-z0-9_-]{43}"  # one without its prefix
    r"|[0-9a-fA-F]{40,}"  # a generated secret (64 hex digits), a hex digest
    # 40 characters or more of base64 mixing capitals, small letters and digits: a random
    # string (an API token's secret part); names and words rarely mix all three that long.
    rf"|(?<!{_RUN})(?={_RUN}*[A-Z])(?={_RUN}*[a-z])(?={_RUN}*[0-9]){_RUN}{{40,}}"
)
DECODINGS = 2  # a value is checked as sent, and percent-decoded once and twice (%2570 is %70)
_SEPARATORS = re.compile(r"([&;])")
_SPACES = re.compile(r"(\s+)")
_HOST = re.compile(r"[a-z0-9.-]+|[0-9a-f:.]+")  # a name or an address; urlsplit lowers it
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
    target = masked_path(raw_path.decode("latin-1"))
    if query:
        target += "?" + masked_query(query.decode("latin-1"))
    referer = user_agent = "-"
    for name, value in scope.get("headers", ()):
        if name == b"referer":
            referer = origin(value.decode("latin-1"))
        elif name == b"user-agent":
            user_agent = masked_words(value.decode("latin-1"))
    client = scope.get("client")
    return AccessEntry(
        client=str(client[0]) if client else "-",
        user=user,
        arrived=arrived,
        method=_escaped(scope["method"].encode()),
        target=_escaped(target.encode("latin-1")),
        protocol=f"HTTP/{scope.get('http_version', '1.1')}",
        status=status,
        sent=sent,
        seconds=seconds,
        referer=_escaped(referer.encode("latin-1")),
        user_agent=_escaped(user_agent.encode("latin-1")),
    )


def masked_path(path: str) -> str:
    """``path`` with every segment that holds a secret masked."""
    return "/".join(MASK if holds_secret(segment) else segment for segment in path.split("/"))


def masked_query(query: str) -> str:
    """``query`` with every parameter that may hold a credential masked."""
    pieces = _SEPARATORS.split(query)
    pieces[::2] = [_masked_parameter(piece) for piece in pieces[::2]]
    return "".join(pieces)


def masked_words(text: str) -> str:
    """``text`` (a User-Agent) with every word that may hold a credential masked, as a query
    parameter would be (``token=REDACTED``)."""
    pieces = _SPACES.split(text)
    pieces[::2] = [_masked_parameter(piece) for piece in pieces[::2]]
    return "".join(pieces)


def origin(url: str) -> str:
    """``scheme://host[:port]`` of an absolute http(s) URL (a Referer), without its user part,
    path, query or fragment; ``REDACTED`` for anything else."""
    try:
        split = urlsplit(url)
        host, port = split.hostname, split.port
    except ValueError:
        return MASK
    if split.scheme not in ("http", "https") or not host or not _HOST.fullmatch(host):
        return MASK
    if holds_secret(host):
        return MASK
    host = f"[{host}]" if ":" in host else host
    return f"{split.scheme}://{host}" + (f":{port}" if port is not None else "")


def holds_secret(text: str) -> bool:
    """Whether ``text`` holds a value shaped like a secret, as it is or percent-decoded."""
    for _ in range(DECODINGS):
        if SECRET_VALUE.search(text):
            return True
        decoded = unquote(text)
        if decoded == text:
            return False
        text = decoded
    return SECRET_VALUE.search(text) is not None


def named_secret(name: str) -> bool:
    """Whether a parameter called ``name`` is named like a credential."""
    if SECRET_NAME.search(name):
        return True
    return any(SECRET_WORD.fullmatch(word) for word in _WORDS.findall(name))


def _masked_parameter(part: str) -> str:
    name, has_value, value = part.partition("=")
    name_text = unquote_plus(name)
    if holds_secret(name_text):
        return MASK  # a bare secret, or one used as a name
    if has_value and (named_secret(name_text) or holds_secret(unquote_plus(value))):
        return f"{name}={MASK}"
    return part


def _escaped(raw: bytes) -> str:
    return _UNSAFE.sub(lambda match: b"\\x%02x" % match.group()[0], raw).decode("ascii")


@functools.lru_cache(maxsize=4)  # lines of the same second share their time stamp
def _clf_time(second: int) -> str:
    return time.strftime("%d/%b/%Y:%H:%M:%S %z", time.localtime(second))
