"""Conditional requests and content coding for pages: ETag, Last-Modified, 304, gzip."""

from __future__ import annotations

from datetime import datetime

import falcon.asgi


def etag_matches(if_none_match: str, *etags: str) -> bool:
    """Whether an ``If-None-Match`` value names one of ``etags`` (weak comparison, RFC 9110)."""
    if if_none_match.strip() == "*":
        return True
    sent = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return any(etag in sent for etag in etags)


def not_modified(req: falcon.asgi.Request, last_modified: datetime | None, *etags: str) -> bool:
    """Whether the client's copy is current: ``If-None-Match`` decides when sent, else
    ``If-Modified-Since`` (when the response has a Last-Modified)."""
    if_none_match = req.get_header("If-None-Match")
    if if_none_match is not None:
        return etag_matches(if_none_match, *etags)
    if last_modified is None:
        return False
    try:
        since = req.get_header_as_datetime("If-Modified-Since")
    except falcon.HTTPInvalidHeader:
        return False
    return since is not None and last_modified.replace(tzinfo=None) <= since.replace(tzinfo=None)


def accepts_gzip(req: falcon.asgi.Request) -> bool:
    header = req.get_header("Accept-Encoding")
    if not header:
        return False
    for coding in header.split(","):
        name, _, params = coding.partition(";")
        if name.strip().lower() in {"gzip", "*"}:
            quality = params.strip().lower().removeprefix("q=")
            try:
                return not params.strip() or float(quality) > 0
            except ValueError:
                return False
    return False
