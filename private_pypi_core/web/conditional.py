"""Conditional requests and content coding for pages: ETag, Last-Modified, 304, gzip.

Each rule reads header values, so that Falcon's resources (through the ``req`` wrappers) and
the fast path (``fast_path``, from the raw request) decide alike.
"""

from __future__ import annotations

import functools
from datetime import datetime

import falcon
import falcon.asgi


def etag_matches(if_none_match: str, *etags: str) -> bool:
    """Whether an ``If-None-Match`` value names one of ``etags`` (weak comparison, RFC 9110)."""
    if if_none_match in etags:  # what a client sends back most of the time: one of ours, as is
        return True
    if if_none_match.strip() == "*":
        return True
    sent = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return any(etag in sent for etag in etags)


def is_current(
    if_none_match: str | None,
    if_modified_since: str | None,
    last_modified: datetime | None,
    *etags: str,
) -> bool:
    """Whether the client's copy is current: ``If-None-Match`` decides when sent, else
    ``If-Modified-Since`` (when the response has a Last-Modified)."""
    if if_none_match is not None:
        return etag_matches(if_none_match, *etags)
    if last_modified is None or if_modified_since is None:
        return False
    since = _http_date(if_modified_since)
    return since is not None and last_modified.replace(tzinfo=None) <= since


def not_modified(req: falcon.asgi.Request, last_modified: datetime | None, *etags: str) -> bool:
    """``is_current`` for the headers of ``req``."""
    return is_current(
        req.get_header("If-None-Match"),
        req.get_header("If-Modified-Since"),
        last_modified,
        *etags,
    )


def gzip_accepted(accept_encoding: str | None) -> bool:
    """Whether an ``Accept-Encoding`` value takes gzip."""
    if not accept_encoding:
        return False
    for coding in accept_encoding.split(","):
        name, _, params = coding.partition(";")
        if name.strip().lower() in {"gzip", "*"}:
            quality = params.strip().lower().removeprefix("q=")
            try:
                return not params.strip() or float(quality) > 0
            except ValueError:
                return False
    return False


def accepts_gzip(req: falcon.asgi.Request) -> bool:
    return gzip_accepted(req.get_header("Accept-Encoding"))


@functools.lru_cache(maxsize=256)  # a client revalidates with the date it was given, again
def _http_date(value: str) -> datetime | None:
    """An HTTP date as naive UTC, as Falcon reads it; ``None`` when malformed (then the
    header is ignored)."""
    try:
        return falcon.http_date_to_dt(value).replace(tzinfo=None)
    except ValueError:
        return None
