"""The headers every redirect carries: its empty body labelled plain text, where Falcon would
label it JSON (its default media type)."""

from __future__ import annotations

import falcon


def plain() -> dict[str, str]:
    """A new dict each time: Falcon adds the redirect's Location to it."""
    return {"Content-Type": falcon.MEDIA_TEXT}
