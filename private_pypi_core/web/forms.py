"""Small text forms (login, initialise) sent urlencoded or as multipart/form-data."""

from __future__ import annotations

import falcon
import falcon.asgi
from falcon.media.multipart import MultipartParseError

from private_pypi_core.errors import BadRequest

MAX_FIELD_BYTES = 1 << 20


async def read_text_form(req: falcon.asgi.Request, *, what: str) -> dict[str, str]:
    """Every field of a text form, whichever of the two encodings a client chose."""
    media_type = (req.content_type or "").split(";")[0].strip().lower()
    try:
        if media_type == falcon.MEDIA_MULTIPART:
            fields = {}
            async for part in await req.get_media():
                data = await part.stream.read(MAX_FIELD_BYTES + 1)
                if len(data) > MAX_FIELD_BYTES:
                    raise BadRequest(f"{what}: the field {part.name!r} is too large.")
                fields[part.name] = data.decode("utf-8")
            return fields
        if media_type == falcon.MEDIA_URLENCODED:
            form = await req.get_media()
            return {key: value for key, value in form.items() if isinstance(value, str)}
    except (MultipartParseError, falcon.MediaMalformedError, UnicodeDecodeError) as error:
        raise BadRequest(f"{what}: the form cannot be read ({error}).") from None
    raise BadRequest(
        f"{what} takes a form (application/x-www-form-urlencoded or multipart/form-data)."
    )
