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
    without_upload_time = "offer"        # or "hide": files the upstream gives no time for
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import urlsplit

from private_pypi_core.errors import ConfigError

DEFAULT_UPSTREAM = "https://pypi.org/simple/"
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


def matches_any(project: str, globs: list[str]) -> bool:
    """Whether the normalised ``project`` matches one of ``globs`` (``*`` and ``?``)."""
    return any(fnmatch.fnmatchcase(project, glob.lower()) for glob in globs)


@dataclass(frozen=True)
class ProxySettings:
    upstream: str = DEFAULT_UPSTREAM
    page_ttl: str = "10m"
    timeout: float = 10.0
    allow: list[str] = field(default_factory=lambda: ["*"])
    deny: list[str] = field(default_factory=list)
    min_upload_age: str = ""
    cooldown_exempt: list[str] = field(default_factory=list)
    without_upload_time: str = "offer"

    def __post_init__(self) -> None:
        address = urlsplit(self.upstream)
        if address.scheme not in ("http", "https") or not address.hostname:
            raise ConfigError(f"upstream must be an http(s) URL, got {self.upstream!r}")
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

    @property
    def ttl(self) -> timedelta:
        return parse_duration(self.page_ttl, key="page_ttl")

    @property
    def cooldown(self) -> timedelta:
        return parse_duration(self.min_upload_age, key="min_upload_age")

    def offers(self, project: str) -> bool:
        """Whether the normalised ``project`` is mirrored (``allow``, then ``deny``)."""
        return matches_any(project, self.allow) and not matches_any(project, self.deny)

    def cooled(self, project: str) -> bool:
        """Whether the cooldown applies to the normalised ``project``."""
        return bool(self.cooldown) and not matches_any(project, self.cooldown_exempt)
