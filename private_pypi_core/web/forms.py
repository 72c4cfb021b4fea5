"""Small text forms (login, logout, yank, initialise), urlencoded or multipart/form-data.

Some are read before any credential is checked, so a form is read only up to a small size,
within a time limit, and parsed from memory: a larger or slower body is refused before it is
buffered, whatever its Content-Length says.
"""

from __future__ import annotations

import asyncio
import io
from urllib.parse import parse_qsl

import falcon
import falcon.asgi
from falcon.media.multipart import (
    MultipartFormHandler,
    MultipartParseError,
    MultipartParseOptions,
)

from private_pypi_core.errors import BadRequest, PayloadTooLarge, RequestTimeout

MAX_FORM_BYTES = 16 << 10  # a login or a yank: a few short fields
MAX_FORM_FIELDS = 16
FORM_READ_SECONDS = 10


async def read_text_form(
    req: falcon.asgi.Request, *, what: str, max_bytes: int = MAX_FORM_BYTES
) -> dict[str, str]:
    """Every field of a text form, whichever of the two encodings a client chose."""
    media_type = (req.content_type or "").split(";")[0].strip().lower()
    if media_type not in (falcon.MEDIA_URLENCODED, falcon.MEDIA_MULTIPART):
        raise BadRequest(
            f"{what} takes a form (application/x-www-form-urlencoded or multipart/form-data)."
        )
    body = await read_body(req, what=what, max_bytes=max_bytes)
    try:
        if media_type == falcon.MEDIA_URLENCODED:
            fields = parse_qsl(
                body.decode("utf-8"),
                keep_blank_values=True,
                strict_parsing=False,
                max_num_fields=MAX_FORM_FIELDS,
            )
            return dict(fields)
        return _multipart_fields(body, req.content_type or "", max_bytes)
    except (MultipartParseError, falcon.HTTPError, UnicodeDecodeError, ValueError) as error:
        reason = getattr(error, "description", None) or str(error) or type(error).__name__
        raise BadRequest(f"{what}: the form cannot be read ({reason}).") from None


async def read_body(req: falcon.asgi.Request, *, what: str, max_bytes: int) -> bytes:
    """A small request body (a form, or the JSON of a trusted-publishing exchange), read as the
    module doc says."""
    too_large = PayloadTooLarge(f"{what}: the form is larger than {max_bytes >> 10} KiB.")
    if req.content_length is not None and req.content_length > max_bytes:
        raise too_large
    chunks, size = [], 0
    try:
        async with asyncio.timeout(FORM_READ_SECONDS):
            async for chunk in req.stream:
                size += len(chunk)
                if size > max_bytes:
                    raise too_large
                chunks.append(chunk)
    except TimeoutError:
        raise RequestTimeout(f"{what}: the form took too long to arrive.") from None
    return b"".join(chunks)


def _multipart_fields(body: bytes, content_type: str, max_bytes: int) -> dict[str, str]:
    options = MultipartParseOptions()
    options.max_body_part_count = MAX_FORM_FIELDS
    options.max_body_part_buffer_size = max_bytes
    form = MultipartFormHandler(options).deserialize(io.BytesIO(body), content_type, len(body))
    return {part.name: part.get_data().decode("utf-8") for part in form if part.name}
