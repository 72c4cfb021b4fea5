"""Choosing the format of a simple page (PEP 691): JSON, versioned HTML or legacy HTML."""

from __future__ import annotations

import functools

import falcon

from private_pypi_core.errors import BadRequest, NotAcceptable

JSON_V1 = "application/vnd.pypi.simple.v1+json"
HTML_V1 = "application/vnd.pypi.simple.v1+html"
HTML_LEGACY = "text/html"
# The server's preference among formats a client names with equal q.
PREFERENCE = (JSON_V1, HTML_V1, HTML_LEGACY)
FORMAT_ALIASES = {
    "json": JSON_V1,
    "html": HTML_V1,
    # PEP 691: "latest" names the newest version the server supports, answered as that version.
    "application/vnd.pypi.simple.latest+json": JSON_V1,
    "application/vnd.pypi.simple.latest+html": HTML_V1,
}
LATEST = "vnd.pypi.simple.latest+"


@functools.lru_cache(maxsize=256)  # clients send the same few headers again and again
def choose_format(accept: str | None, format_param: str | None) -> str:
    """The media type to answer with.

    ``?format=`` wins when given. Otherwise the highest q in ``Accept`` wins; among equal q a
    format the client named outright beats one matched by a wildcard, then the server's
    preference decides, except that a bare wildcard (``*/*``) gets legacy HTML, as browsers
    and curl expect. No ``Accept`` at all also means legacy HTML.
    """
    if format_param:
        wanted = format_param.strip().lower()
        chosen = FORMAT_ALIASES.get(wanted, wanted)
        if chosen not in PREFERENCE:
            raise NotAcceptable(
                f"format={format_param!r} is not offered; use one of {', '.join(PREFERENCE)}."
            )
        return chosen
    # Media types are case-insensitive and empty list elements are ignored (RFC 9110).
    accept = ",".join(
        part
        for part in (accept or "").lower().replace(LATEST, "vnd.pypi.simple.v1+").split(",")
        if part.strip()
    )
    if not accept:
        return HTML_LEGACY
    try:
        qualities = {offered: falcon.mediatypes.quality(offered, accept) for offered in PREFERENCE}
    except ValueError:
        raise BadRequest(f"the Accept header {accept!r} cannot be parsed.") from None
    named = {part.split(";")[0].strip().lower() for part in accept.split(",")}

    def rank(offered: str) -> tuple[float, bool, int]:
        explicit = offered in named
        preference = PREFERENCE.index(offered)
        return qualities[offered], explicit, -preference if explicit else preference

    best = max(PREFERENCE, key=rank)
    if qualities[best] <= 0:
        raise NotAcceptable(
            f"none of the formats in Accept: {accept} is offered; "
            f"this index serves {', '.join(PREFERENCE)}."
        )
    return best
