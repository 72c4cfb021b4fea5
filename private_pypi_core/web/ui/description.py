"""A release's description, from its core metadata, as safe HTML: rendered as pypi.org renders
it, with ``readme_renderer`` (Markdown, reStructuredText, plain text), whose output nh3 has
sanitised (no script, no event attribute, no ``javascript:`` link).

Some descriptions show as escaped plain text instead, after a note saying why: one that fails
to render, one that ``limits`` finds would cost too much to render, and the first
``MAX_RENDERED_BYTES`` of a longer one. Anyone who may upload writes descriptions, anyone who
may read has them rendered: what a page view costs must not depend on the author.

Each worker renders on a thread of its own (not the one downloads and uploads wait on), each
description once however many pages ask for it at the same time, and keeps the latest, a
failure as well as a success, by the sha256 of the metadata file they come from: the same bytes
always render the same, whichever repository holds them.
"""

from __future__ import annotations

import asyncio
import email.message
import io
import logging
import sys
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from markupsafe import Markup, escape

from private_pypi_core.metadata import parse_metadata
from private_pypi_core.web.ui.limits import MAX_RENDERED_BYTES, too_costly

log = logging.getLogger(__name__)

CACHE_SIZE = 256
CACHE_BYTES = 32 << 20
RENDER_THREADS = 1  # a worker renders one description at a time
LINK_SCHEMES = ("http", "https")
TOO_LONG = (
    f"Only the first {MAX_RENDERED_BYTES >> 10} KiB of this description show, as plain text: "
    "it is too long to render."
)


@dataclass(frozen=True)
class Description:
    summary: str
    html: Markup  # sanitised; empty when the release has no description
    links: list[tuple[str, str]]  # (label, URL) of its Project-URL and Home-page, http(s) only

    @property
    def size(self) -> int:
        """About the bytes it holds in memory."""
        strings = [self.summary, self.html, *(part for link in self.links for part in link)]
        return sum(sys.getsizeof(string) for string in strings)


def describe(metadata: bytes, filename: str) -> Description:
    """The description in ``metadata``, the core metadata of ``filename`` (blocking, and
    CPU-bound: run it on ``DescriptionCache``'s thread). ``BadRequest`` when it is not core
    metadata."""
    fields = parse_metadata(_without_unshown_body(metadata), filename)
    text = fields.get("description") or ""
    content_type = fields.get("description_content_type")
    return Description(
        summary=fields.get("summary") or "",
        html=render_description(text, content_type, source=filename) if text else Markup(),
        links=_links(fields),
    )


def render_description(
    text: str, content_type: str | None, *, source: str = "a description"
) -> Markup:
    """``text`` as sanitised HTML by its ``Description-Content-Type``: ``text/markdown`` (GFM
    unless ``variant=CommonMark``), ``text/plain``, else reStructuredText (pypi.org's default
    when none is given). As escaped plain text after a note when it is too long, would cost too
    much, or fails to render; the last two logged, as from ``source``."""
    data = text.encode()
    if len(data) > MAX_RENDERED_BYTES:
        return _plain(data[:MAX_RENDERED_BYTES].decode(errors="ignore"), TOO_LONG)
    header = email.message.Message()
    header["Content-Type"] = content_type or "text/x-rst"
    media_type = header.get_content_type()
    reason = too_costly(text, media_type)
    if reason is not None:
        log.warning("%s: description shown as plain text: %s", source, reason)
        return _plain(text, f"This description shows as plain text: {reason}.")
    try:
        html = _render(text, media_type, str(header.get_param("variant", "GFM")))
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as error:  # RecursionError, MemoryError; a Rust panic too (pyo3's
        # PanicException is no Exception). One short line: the cause is the text, not the code.
        log.warning(
            "%s: description shown as plain text: %s: %.200s", source, type(error).__name__, error
        )
        return _plain(text, "This description shows as plain text: it failed to render.")
    if html is None:  # invalid markup: its author's to fix, nothing for the log
        return _plain(text, "This description shows as plain text: it does not render.")
    return Markup(html)  # sanitised by readme_renderer (nh3)


def _render(text: str, media_type: str, variant: str) -> str | None:
    # readme_renderer brings docutils, pygments and more (about 9 MB a worker): imported by
    # the first project page that shows a description, not by every worker that starts.
    import readme_renderer.markdown
    import readme_renderer.rst
    import readme_renderer.txt

    if media_type == "text/markdown":
        return readme_renderer.markdown.render(text, variant=variant)
    if media_type == "text/plain":
        return readme_renderer.txt.render(text)
    # docutils reports a failure on a stream: keep it out of the server's log
    return readme_renderer.rst.render(text, stream=io.StringIO())


def _plain(text: str, note: str) -> Markup:
    return Markup('<p class="hint">{}</p>\n<pre class="plain">{}</pre>').format(note, escape(text))


def _without_unshown_body(metadata: bytes) -> bytes:
    """``metadata`` without the part of its body (the description) that would not show, cut
    between characters: parsing the 16 MiB a metadata file may hold takes a second and half a
    gigabyte. What is kept still exceeds ``MAX_RENDERED_BYTES`` when the whole did."""
    ends = [end for end in (metadata.find(b"\n\n"), metadata.find(b"\r\n\r\n")) if end != -1]
    if not ends:
        return metadata
    # The body starts at most 4 bytes on; keep 4 bytes more than shows, so that a cut moved
    # back to a character boundary still keeps more than shows.
    cut = min(ends) + 4 + MAX_RENDERED_BYTES + 4
    if cut >= len(metadata):
        return metadata
    while metadata[cut] & 0xC0 == 0x80:  # inside a UTF-8 sequence
        cut -= 1
    return metadata[:cut]


def _links(metadata: dict[str, Any]) -> list[tuple[str, str]]:
    found = [("Homepage", metadata["home_page"])] if metadata.get("home_page") else []
    found += list(metadata.get("project_urls", {}).items())
    links = [(label.strip(), url.strip()) for label, url in found]
    return [(label, url) for label, url in links if urlsplit(url).scheme in LINK_SCHEMES]


class DescriptionCache:
    """The descriptions of this worker, by metadata sha256: each rendered on the cache's own
    thread, once however many pages ask for it at the same time; the latest kept, at most
    ``size`` of them and about ``max_bytes`` in all. Used from the event loop only."""

    def __init__(self, size: int = CACHE_SIZE, max_bytes: int = CACHE_BYTES) -> None:
        self.size = size
        self.max_bytes = max_bytes
        self._descriptions: OrderedDict[str, Description] = OrderedDict()
        self._bytes = 0
        self._rendering: dict[str, asyncio.Task[Description]] = {}
        self._thread = ThreadPoolExecutor(RENDER_THREADS, thread_name_prefix="description")

    async def describe(
        self, metadata_sha256: str, read: Callable[[], Awaitable[bytes]], filename: str
    ) -> Description:
        """The description in the core metadata of ``filename``, whose sha256 is
        ``metadata_sha256``: kept, being rendered for another page, or read (``read``) and
        rendered now. What ``read`` raises (the store's errors) reaches every page waiting,
        and is not kept."""
        found = self.get(metadata_sha256)
        if found is not None:
            return found
        rendering = self._rendering.get(metadata_sha256)
        if rendering is None:
            rendering = asyncio.create_task(self._render(metadata_sha256, read, filename))
            self._rendering[metadata_sha256] = rendering
            rendering.add_done_callback(lambda task: self._done(metadata_sha256, task))
        # A page whose client leaves stops waiting; the others still get the render.
        return await asyncio.shield(rendering)

    async def _render(
        self, metadata_sha256: str, read: Callable[[], Awaitable[bytes]], filename: str
    ) -> Description:
        metadata = await read()
        loop = asyncio.get_running_loop()
        description = await loop.run_in_executor(self._thread, describe, metadata, filename)
        self.put(metadata_sha256, description)
        return description

    def _done(self, metadata_sha256: str, task: asyncio.Task[Description]) -> None:
        del self._rendering[metadata_sha256]
        if not task.cancelled():
            task.exception()  # seen here too, when every page that waited for it has left

    def get(self, metadata_sha256: str) -> Description | None:
        found = self._descriptions.get(metadata_sha256)
        if found is not None:
            self._descriptions.move_to_end(metadata_sha256)
        return found

    def put(self, metadata_sha256: str, description: Description) -> None:
        """Keep ``description``, dropping the least recently used beyond the bounds (never the
        one just kept: the next page would render it again)."""
        replaced = self._descriptions.pop(metadata_sha256, None)
        if replaced is not None:
            self._bytes -= replaced.size
        self._descriptions[metadata_sha256] = description
        self._bytes += description.size
        while len(self._descriptions) > 1 and (
            len(self._descriptions) > self.size or self._bytes > self.max_bytes
        ):
            _, dropped = self._descriptions.popitem(last=False)
            self._bytes -= dropped.size
