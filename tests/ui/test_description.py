"""Descriptions, in process: real READMEs render as readme_renderer renders them; what would
cost too much to render, and what fails to, shows as escaped plain text after a note, quickly;
the cache renders a description once however many pages ask, off the shared thread pool, and
holds a bounded number of bytes."""

from __future__ import annotations

import asyncio
import email.message
import importlib.metadata
import io
import logging
import re
import threading
import time
from typing import Any

import pytest
import readme_renderer.markdown
import readme_renderer.rst
from markupsafe import Markup

from private_pypi_core.metadata import parse_metadata
from private_pypi_core.web.ui import description as description_module
from private_pypi_core.web.ui.description import (
    Description,
    DescriptionCache,
    describe,
    render_description,
)
from private_pypi_core.web.ui.limits import MAX_RENDERED_BYTES, too_costly

QUICKLY = 2.0  # seconds; each of these takes milliseconds, and took seconds to minutes unbounded

ALL_CONTRIBUTORS = (
    "## Contributors\n\n<table>\n"
    + "".join(
        "  <tr>\n"
        + "".join(
            f'    <td align="center"><a href="https://example.com/u{row}{column}">'
            f'<img src="https://example.com/a/{row}{column}.png" width="100px;" alt=""/>'
            f"<br /><sub><b>Person {row}{column}</b></sub></a><br />"
            f'<a href="https://example.com/c{row}{column}" title="Code">💻</a></td>\n'
            for column in range(7)
        )
        + "  </tr>\n"
        for row in range(20)
    )
    + "</table>\n"
)
NESTED_LISTS = "".join("    " * level + f"- level {level}\n" for level in range(8))
DEEP_JSON = (
    "```json\n"
    + "".join("  " * level + f'{{"level": {level},\n' for level in range(30))
    + "".join("  " * level + "}\n" for level in reversed(range(30)))
    + "```\n"
)
WIDE_TABLE = (
    "| " + " | ".join(f"col {n}" for n in range(12)) + " |\n"
    "|" + "---|" * 12 + "\n" + ("| " + " | ".join(["value"] * 12) + " |\n") * 200
)
CENTERED_HEADER = (
    '<p align="center">\n  <img src="https://example.com/logo.png" alt="logo" width="200">\n'
    '</p>\n<h1 align="center">Project</h1>\n<div align="center">\n\n'
    "[![ci](https://example.com/ci.svg)](https://example.com/ci)\n\n</div>\n\n"
    "> **Note**\n> > Nested quote, with a list:\n> > - one\n> >   - two\n"
)
RST_BADGES = (
    "Project\n=======\n\n"
    + "".join(f"|badge{n}| " for n in range(12))
    + "\n\n"
    + "".join(
        f".. |badge{n}| image:: https://img.shields.io/badge/b-{n}-green.svg\n"
        f"   :target: https://example.com/{n}\n   :alt: badge {n}\n"
        for n in range(12)
    )
    + "\n.. |project| replace:: **Project**\n\n"
    + "Use |project| to do things. " * 40
    + "\n\n"
    + "".join("  " * level + f"* item {level}\n\n" for level in range(6))
)


def content_of(name: str) -> tuple[str, str]:
    """The description of an installed distribution and its Description-Content-Type."""
    metadata_file = importlib.metadata.distribution(name).read_text("METADATA")
    assert metadata_file is not None, name
    fields = parse_metadata(metadata_file.encode(), name)
    return fields["description"], fields.get("description_content_type") or "text/x-rst"


def readme_renderer_html(text: str, content_type: str) -> str | None:
    """What readme_renderer alone renders (the page showed exactly this before any limit)."""
    header = email.message.Message()
    header["Content-Type"] = content_type
    if header.get_content_type() == "text/markdown":
        return readme_renderer.markdown.render(
            text, variant=str(header.get_param("variant", "GFM"))
        )
    return readme_renderer.rst.render(text, stream=io.StringIO())


def rendered_quickly(text: str, content_type: str) -> Markup:
    started = time.monotonic()
    html = render_description(text, content_type)
    assert time.monotonic() - started < QUICKLY
    return html


def plain_text_note(html: str) -> str | None:
    """The note before a description shown as plain text; ``None`` when it was rendered."""
    match = re.match(r'<p class="hint">(.*?)</p>\n<pre class="plain">', html)
    return match.group(1) if match else None


# --- What renders -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "project", ["falcon", "docutils", "charset-normalizer", "rich", "typer", "pypi-attestations"]
)
def test_readmes_of_popular_projects_render_exactly_as_readme_renderer_renders_them(
    project: str,
) -> None:
    text, content_type = content_of(project)
    assert too_costly(text, content_type.split(";")[0]) is None
    html = rendered_quickly(text, content_type)
    assert html == readme_renderer_html(text, content_type)


@pytest.mark.parametrize(
    ("text", "content_type"),
    [
        (ALL_CONTRIBUTORS, "text/markdown"),
        (NESTED_LISTS, "text/markdown"),
        (DEEP_JSON, "text/markdown"),
        (WIDE_TABLE, "text/markdown"),
        (CENTERED_HEADER, "text/markdown"),
        (RST_BADGES, "text/x-rst"),
    ],
    ids=["all-contributors", "nested-lists", "deep-json", "wide-table", "html-header", "rst"],
)
def test_shapes_real_readmes_take_stay_rendered(text: str, content_type: str) -> None:
    html = rendered_quickly(text, content_type)
    assert plain_text_note(html) is None, html[:300]
    assert html == readme_renderer_html(text, content_type)


# --- What shows as plain text ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "content_type", "says"),
    [
        (">" * 100_000 + " x", "text/markdown", "it nests 100,001 levels deep"),
        ("".join("  " * i + "- x\n" for i in range(400)), "text/markdown", "it nests 800 levels"),
        ("<div>" * 20_000 + "x", "text/markdown", "its HTML nests 20,000 elements deep"),
        ("x[^a]\n\n[^a]: " + ">" * 20_000 + " x", "text/markdown", "it nests 20,007 levels"),
        ("".join("  " * i + "- x\n\n" for i in range(200)), "text/x-rst", "it nests 400 levels"),
    ],
    ids=["markdown-quotes", "markdown-lists", "html", "footnote", "restructuredtext"],
)
def test_nesting_beyond_the_limit_shows_as_plain_text_after_a_note(
    text: str, content_type: str, says: str
) -> None:
    html = rendered_quickly(text, content_type)
    note = plain_text_note(html)
    assert note is not None and note.startswith("This description shows as plain text: ")
    assert says in note
    assert html.endswith(f'<pre class="plain">{Markup.escape(text)}</pre>')


@pytest.mark.parametrize(
    ("text", "content_type", "says"),
    [
        (  # 24 KB of table: 18 s and 2 GB to render
            "|" + "a|" * 1_000 + "\n|" + "-|" * 1_000 + "\n" + "a\n" * 10_000,
            "text/markdown",
            "its tables have 10,002,000 cells",
        ),
        (  # the GitHub-flavoured tag filter: 5 s for 275 KB
            "<div></div>\n" * 20_000,
            "text/markdown",
            "too many tags for its length (40,000 '<' in 240,000 characters)",
        ),
        (  # 13 KB that renders to 10 MB
            ".. |a| replace:: " + "a " * 2_500 + "\n\n" + ("|a| " * 20 + "\n") * 100,
            "text/x-rst",
            "its substitutions would add up to",
        ),
    ],
    ids=["table-cells", "html-block", "substitutions"],
)
def test_what_would_render_far_larger_or_slower_than_it_is_shows_as_plain_text(
    text: str, content_type: str, says: str
) -> None:
    note = plain_text_note(rendered_quickly(text, content_type))
    assert note is not None and says in note.replace("&#39;", "'").replace("&lt;", "<")


def test_a_description_beyond_256_kib_shows_its_first_256_kib_as_plain_text() -> None:
    text = "- a\n" * (4 << 20)  # 16 MiB: 21 s and 2.6 GB to render
    html = rendered_quickly(text, "text/markdown")
    assert plain_text_note(html) == (
        "Only the first 256 KiB of this description show, as plain text: it is too long to render."
    )
    shown = html.split('<pre class="plain">')[1].removesuffix("</pre>")
    assert shown == text[:MAX_RENDERED_BYTES]


def test_a_description_that_fails_to_render_logs_one_short_line_and_shows_plain_text(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Nesting under the limit that docutils still cannot take: a RecursionError."""
    text = "".join(" " * i + "x\n\n" for i in range(255))
    with caplog.at_level(logging.WARNING):
        html = render_description(text, "text/x-rst", source="deep-1.0.whl")
    assert plain_text_note(html) == "This description shows as plain text: it failed to render."
    [record] = caplog.records
    assert record.exc_info is None
    assert record.getMessage().startswith("deep-1.0.whl: description shown as plain text: ")
    assert "RecursionError" in record.getMessage() and len(record.getMessage()) < 300


class PanicException(BaseException):
    """What a Rust renderer's panic raises in Python (pyo3): not an ``Exception``."""


@pytest.mark.parametrize("error", [ValueError("bad"), MemoryError(), PanicException("panic")])
def test_any_error_of_a_renderer_shows_plain_text(
    monkeypatch: pytest.MonkeyPatch, error: BaseException
) -> None:
    def fail(*args: object) -> str:
        raise error

    monkeypatch.setattr(description_module, "_render", fail)
    note = plain_text_note(render_description("# Title", "text/markdown"))
    assert note == "This description shows as plain text: it failed to render."


def test_describe_parses_no_more_of_a_huge_description_than_it_shows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Parsing all 16 MiB takes over a second and half a gigabyte; the page shows 256 KiB."""
    parsed: list[int] = []

    def spied(data: bytes, filename: str) -> dict[str, Any]:
        parsed.append(len(data))
        return parse_metadata(data, filename)

    monkeypatch.setattr(description_module, "parse_metadata", spied)
    text = "é" * (8 << 20)  # two bytes each: a cut must fall between characters
    metadata = f"Metadata-Version: 2.1\nName: huge\nVersion: 1.0\nSummary: Huge\n\n{text}"
    found = describe(metadata.encode(), "huge-1.0-py3-none-any.whl")
    assert parsed and parsed[0] < MAX_RENDERED_BYTES + 1024
    assert found.summary == "Huge"
    assert plain_text_note(found.html) is not None
    assert "é" * 1000 in found.html


# --- The cache ---------------------------------------------------------------------------


def metadata_of(description: str, content_type: str = "text/markdown") -> bytes:
    return (
        "Metadata-Version: 2.1\nName: thing\nVersion: 1.0\n"
        f"Description-Content-Type: {content_type}\n\n{description}"
    ).encode()


def test_pages_asking_at_once_for_one_description_read_and_render_it_once_on_its_own_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    threads: list[str] = []

    def spied(metadata: bytes, filename: str) -> Description:
        threads.append(threading.current_thread().name)
        return describe(metadata, filename)

    monkeypatch.setattr(description_module, "describe", spied)
    reads = 0

    async def read() -> bytes:
        nonlocal reads
        reads += 1
        await asyncio.sleep(0.05)
        return metadata_of("# Title\n\n" + ">" * 100_000)

    async def pages() -> list[Description]:
        cache = DescriptionCache()
        return await asyncio.gather(*(cache.describe("sha", read, "t.whl") for _ in range(14)))

    found = asyncio.run(pages())
    assert reads == 1 and len(threads) == 1
    assert threads[0].startswith("description")
    assert all(description is found[0] for description in found)


def test_a_description_shown_as_plain_text_is_kept_like_a_rendered_one() -> None:
    reads = 0

    async def read() -> bytes:
        nonlocal reads
        reads += 1
        return metadata_of("".join(" " * i + "x\n\n" for i in range(255)), "text/x-rst")

    async def twice() -> tuple[Description, Description]:
        cache = DescriptionCache()
        return await cache.describe("sha", read, "t.whl"), await cache.describe("sha", read, "t")

    first, second = asyncio.run(twice())
    assert reads == 1 and first is second
    assert plain_text_note(first.html) is not None


def test_a_store_failure_reaches_every_page_waiting_and_is_not_kept() -> None:
    reads = 0

    async def read() -> bytes:
        nonlocal reads
        reads += 1
        await asyncio.sleep(0.01)
        raise OSError("store down")

    async def pages() -> list[Description | BaseException]:
        cache = DescriptionCache()
        waiting = [cache.describe("sha", read, "t.whl") for _ in range(3)]
        found = await asyncio.gather(*waiting, return_exceptions=True)
        later = await asyncio.gather(cache.describe("sha", read, "t.whl"), return_exceptions=True)
        return [*found, *later]

    found = asyncio.run(pages())
    assert all(isinstance(error, OSError) for error in found)
    assert reads == 2  # once for the three waiting together, once again later


def test_the_description_cache_keeps_the_latest_within_its_bytes() -> None:
    cache = DescriptionCache(max_bytes=3 << 20)
    described = {key: Description(key, Markup("x" * (1 << 20)), []) for key in "abcd"}
    for key in "abc":
        cache.put(key, described[key])
    assert cache.get("a") is None, "three megabytes and more: the oldest is dropped"
    assert cache.get("b") is described["b"]  # now the latest used
    cache.put("d", described["d"])
    assert cache.get("c") is None
    assert cache.get("b") is described["b"] and cache.get("d") is described["d"]
    huge = Description("huge", Markup("x" * (4 << 20)), [])
    cache.put("huge", huge)
    assert cache.get("huge") is huge, "kept alone rather than rendered again for every page"
    assert cache.get("b") is None and cache.get("d") is None
