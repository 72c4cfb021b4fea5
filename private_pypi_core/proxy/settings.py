"""The ``[<repository>.proxy]`` table: which upstream a repository mirrors, and what of it.

::

    [pypi]
    type = "file_system"                 # where the cache is stored: any backend
    read_secret = "..."
    [pypi.proxy]
    upstream = "https://pypi.org/simple/"
    page_ttl = "10m"                     # how long a fetched page is served without asking
    timeout = 10                         # seconds, to connect and between two reads
    allow = ["*"]                        # project globs offered ...
    deny = []                            # ... but for these
    min_upload_age = "3d"                # the cooldown: younger files are not offered yet
    cooldown_exempt = ["certifi"]        # project globs the cooldown spares
    without_upload_time = "hide"         # or "offer": files the upstream gives no time for
    file_origins = []                    # where files may be fetched from (see below)

A page names its files by URL. Only URLs of the upstream's own origin are fetched, and those of
``file_origins`` (``scheme://host[:port]``; for pypi.org, ``https://files.pythonhosted.org``
is known): a page naming another place (an address inside the network, say) offers nothing
from there.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property
from urllib.parse import urlsplit, urlunsplit

from private_pypi_core.errors import ConfigError

DEFAULT_UPSTREAM = "https://pypi.org/simple/"
# Where each well-known index keeps its files.
KNOWN_FILE_ORIGINS = {"https://pypi.org": "https://files.pythonhosted.org"}
USERINFO = re.compile(r"//[^/]*@")
DURATION = re.compile(r"(\d+)\s*([smhdw])")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
WITHOUT_UPLOAD_TIME = ("offer", "hide")


def parse_duration(text: str, *, key: str) -> timedelta:
    """``"90s"``, ``"10m"``, ``"12h"``, ``"3d"``, ``"2w"`` (or ``""``: none) as a timedelta."""
    if not text:
        return timedelta(0)
    match = DURATION.fullmatch(text.strip())
    if match is None:
        raise ConfigError(
            f"{key} must be a duration such as '90s', '10m', '12h', '3d' or '2w', got {text!r}"
        )
    return timedelta(seconds=int(match[1]) * UNITS[match[2]])


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of ``url``, without credentials or path ("" if it has none)."""
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:  # not a URL, or a port that is no number
        return ""
    if not parts.scheme or not parts.hostname:
        return ""
    return f"{parts.scheme}://{parts.hostname}{port}"


def without_credentials(url: str) -> str:
    """``url`` without the user and password it may hold."""
    try:
        parts = urlsplit(url)
    except ValueError:  # not a URL: whatever stands between "//" and "@" goes all the same
        return USERINFO.sub("//", url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def shown(url: str) -> str:
    """``url`` as messages and logs show it: without credentials, query or fragment."""
    parts = urlsplit(without_credentials(url))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def matches_any(project: str, globs: list[str]) -> bool:
    """Whether the normalised ``project`` matches one of ``globs`` (``*`` and ``?``)."""
    return any(fnmatch.fnmatchcase(project, glob.lower()) for glob in globs)


@dataclass(frozen=True)
class ProxySettings:
    upstream: str = field(default=DEFAULT_UPSTREAM, repr=False)  # may hold credentials
    page_ttl: str = "10m"
    timeout: float = 10.0
    allow: list[str] = field(default_factory=lambda: ["*"])
    deny: list[str] = field(default_factory=list)
    min_upload_age: str = ""
    cooldown_exempt: list[str] = field(default_factory=list)
    without_upload_time: str = "hide"
    file_origins: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        for origin in self.file_origins:
            if origin_of(origin) != origin.rstrip("/"):
                raise ConfigError(
                    f"file_origins must be origins such as 'https://files.example.com', "
                    f"got {shown(origin)!r}"
                )
        if not origin_of(self.upstream).startswith(("http://", "https://")):
            raise ConfigError(f"upstream must be an http(s) URL, got {shown(self.upstream)!r}")
        if not self.upstream.endswith("/"):
            object.__setattr__(self, "upstream", self.upstream + "/")
        if not 0 < self.timeout <= 300:
            raise ConfigError(f"timeout must be between 0 and 300 seconds, got {self.timeout}")
        if self.without_upload_time not in WITHOUT_UPLOAD_TIME:
            raise ConfigError(
                f"without_upload_time must be 'offer' or 'hide', got {self.without_upload_time!r}"
            )
        parse_duration(self.page_ttl, key="page_ttl")  # a mistake stops the server at start
        parse_duration(self.min_upload_age, key="min_upload_age")

    @cached_property
    def allowed_file_origins(self) -> frozenset[str]:
        """The origins files are fetched from: the upstream's, and those configured or known."""
        upstream = origin_of(self.upstream)
        known = KNOWN_FILE_ORIGINS.get(upstream)
        extra = [origin.rstrip("/") for origin in self.file_origins]
        return frozenset([upstream, *extra, *([known] if known else [])])

    @cached_property
    def ttl(self) -> timedelta:
        return parse_duration(self.page_ttl, key="page_ttl")

    @cached_property
    def cooldown(self) -> timedelta:
        return parse_duration(self.min_upload_age, key="min_upload_age")

    def offers(self, project: str) -> bool:
        """Whether the normalised ``project`` is mirrored (``allow``, then ``deny``)."""
        return matches_any(project, self.allow) and not matches_any(project, self.deny)

    def cooled(self, project: str) -> bool:
        """Whether the cooldown applies to the normalised ``project``."""
        return bool(self.cooldown) and not matches_any(project, self.cooldown_exempt)
