"""A release's description, from its core metadata, as safe HTML: rendered as pypi.org renders
it, with ``readme_renderer`` (Markdown, reStructuredText, plain text), whose output nh3 has
sanitised (no script, no event attribute, no ``javascript:`` link).

A description that fails to render shows as escaped plain text. Each worker keeps the latest
``CACHE_SIZE`` descriptions, by the sha256 of the metadata file they come from: the same bytes
always render the same, whichever repository holds them.
"""

from __future__ import annotations

import email.message
import io
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from markupsafe import Markup, escape

from private_pypi_core.index import IndexEntry
from private_pypi_core.metadata import parse_metadata
from private_pypi_core.repository import Repository
from private_pypi_core.web.simple import read_stored

CACHE_SIZE = 256
LINK_SCHEMES = ("http", "https")


@dataclass(frozen=True)
class Description:
    summary: str
    html: Markup  # sanitised; empty when the release has no description
    links: list[tuple[str, str]]  # (label, URL) of its Project-URL and Home-page, http(s) only


def describe(repository: Repository, entry: IndexEntry) -> Description:
    """The description in the core metadata stored beside ``entry`` (blocking: run it in a
    thread). ``NotFound`` or ``OSError`` when the store cannot give it."""
    metadata = parse_metadata(read_stored(repository, entry.metadata_dist), entry.filename)
    text = metadata.get("description") or ""
    return Description(
        summary=metadata.get("summary") or "",
        html=render_description(text, metadata.get("description_content_type"))
        if text
        else Markup(),
        links=_links(metadata),
    )


def render_description(text: str, content_type: str | None) -> Markup:
    """``text`` as sanitised HTML by its ``Description-Content-Type``: ``text/markdown`` (GFM
    unless ``variant=CommonMark``), ``text/plain``, else reStructuredText (pypi.org's default
    when none is given)."""
    # readme_renderer brings docutils, pygments and more (about 9 MB a worker): imported by
    # the first project page that shows a description, not by every worker that starts.
    import readme_renderer.markdown
    import readme_renderer.rst
    import readme_renderer.txt

    header = email.message.Message()
    header["Content-Type"] = content_type or "text/x-rst"
    media_type = header.get_content_type()
    html: str | None
    if media_type == "text/markdown":
        variant = header.get_param("variant", "GFM")
        html = readme_renderer.markdown.render(text, variant=str(variant))
    elif media_type == "text/plain":
        html = readme_renderer.txt.render(text)
    else:  # docutils reports a failure on a stream: keep it out of the server's log
        html = readme_renderer.rst.render(text, stream=io.StringIO())
    if html is None:
        return Markup('<pre class="plain">{}</pre>').format(escape(text))
    return Markup(html)  # sanitised by readme_renderer (nh3)


def _links(metadata: dict[str, Any]) -> list[tuple[str, str]]:
    found = [("Homepage", metadata["home_page"])] if metadata.get("home_page") else []
    found += list(metadata.get("project_urls", {}).items())
    links = [(label.strip(), url.strip()) for label, url in found]
    return [(label, url) for label, url in links if urlsplit(url).scheme in LINK_SCHEMES]


class DescriptionCache:
    """The latest descriptions rendered in this worker, by metadata sha256. Used from the event
    loop only: rendering happens in a thread, between a ``get`` and a ``put``."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self.size = size
        self._descriptions: OrderedDict[str, Description] = OrderedDict()

    def get(self, metadata_sha256: str) -> Description | None:
        found = self._descriptions.get(metadata_sha256)
        if found is not None:
            self._descriptions.move_to_end(metadata_sha256)
        return found

    def put(self, metadata_sha256: str, description: Description) -> None:
        self._descriptions[metadata_sha256] = description
        self._descriptions.move_to_end(metadata_sha256)
        while len(self._descriptions) > self.size:
            self._descriptions.popitem(last=False)
