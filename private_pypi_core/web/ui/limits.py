"""Which descriptions would cost too much to render: one linear look at the text, before any
renderer runs, for the shapes whose cost grows faster than their size.

The renderers are fast on what READMEs hold, and far from it on some shapes anyone who may
upload can write: nh3 is quadratic in nesting depth (``'>' * 100_000`` in Markdown: over a
minute), the GitHub-flavoured tag filter is quadratic in the ``<`` of an HTML block, a Markdown
table pads every row to its header's width (24 KB of table: 18 s, 2 GB), docutils expands a
substitution at every reference and recurses once per nesting level (a ``RecursionError`` near
200). Each limit below is far above what the descriptions of popular projects reach (the most
of 144 of them is in brackets), and keeps the cost it bounds to a fraction of a second.
"""

from __future__ import annotations

import re

MAX_RENDERED_BYTES = 256 * 1024  # of UTF-8 text; the largest description seen: 141 KB
MAX_NESTING = 256  # levels of block structure (56), or of HTML block elements (2)
MAX_TAG_SCAN = 1 << 29  # the ``<`` of a Markdown text times its length (4.2 million): 0.4 s
MAX_TABLE_CELLS = 100_000  # that a Markdown table renders (241)
MAX_SUBSTITUTED = MAX_RENDERED_BYTES  # characters reStructuredText substitutions add (5,000)

# What opens a line of nested blocks: indentation, '>' quotes, list markers, footnotes.
LEADING_STRUCTURE = re.compile(
    r"^(?:[ \t>]|[-*+][ \t]|\d{1,9}[.)][ \t]|\[\^[^\]\n]*\]:)+", re.MULTILINE
)
# The start tags that make html5ever look through every element open: nh3 is quadratic in their
# depth ('<div>' * 10_000: 190 ms), not in that of the others ('<span>' * 10_000: 5 ms).
BLOCK_TAG = re.compile(
    r"<(/?)(?:address|article|aside|blockquote|body|center|details|dialog|dir|div|dl|fieldset"
    r"|figcaption|figure|footer|form|h[1-6]|header|hgroup|iframe|legend|main|menu|nav|ol|pre"
    r"|search|section|summary|table|textarea|ul)(?=[\s/>])",
    re.IGNORECASE,
)
TABLE_DELIMITER_ROW = re.compile(r"\|?(?:[ \t]*:?-+:?[ \t]*\|)+(?:[ \t]*:?-+:?[ \t]*)?")
SUBSTITUTION_DEFINITION = re.compile(r"^\.\.[ \t]+\|[^|\n]+\|[ \t]+[\w-]+::", re.MULTILINE)
SUBSTITUTION_REFERENCE = re.compile(r"\|[^\s|][^|\n]*\|")
INDENTED_BLOCK = re.compile(r".*(?:\n(?:[ \t].*)?)*")  # a line, and the blank or indented after it
DOCUTILS_LINE_LENGTH_LIMIT = 10_000  # what docutils expands one nested substitution to, at most


def too_costly(text: str, media_type: str) -> str | None:
    """Why rendering ``text`` (at most ``MAX_RENDERED_BYTES``) as ``media_type`` would cost too
    much, as the end of a sentence ("it nests 100,001 levels deep"); ``None`` when it may be
    rendered. Plain text always may: it is escaped, never parsed."""
    if media_type == "text/plain":
        return None
    depth = structure_depth(text)
    if depth > MAX_NESTING:
        return f"it nests {depth:,} levels deep, more than the {MAX_NESTING} rendered"
    if media_type == "text/markdown":
        depth = element_depth(text)
        if depth > MAX_NESTING:
            return f"its HTML nests {depth:,} elements deep, more than the {MAX_NESTING} rendered"
        if text.count("<") * len(text) > MAX_TAG_SCAN:
            tags = text.count("<")
            return f"it has too many tags for its length ({tags:,} '<' in {len(text):,} characters)"
        cells = table_cells(text)
        if cells > MAX_TABLE_CELLS:
            return f"its tables have {cells:,} cells, more than the {MAX_TABLE_CELLS:,} rendered"
        return None
    added = substituted_characters(text)
    if added > MAX_SUBSTITUTED:
        return f"its substitutions would add up to {added:,} characters"
    return None


def structure_depth(text: str) -> int:
    """The widest run of block structure that opens a line, a tab counting as four columns:
    every level of nesting a line opens takes at least one column of it, in Markdown and in
    reStructuredText alike."""
    runs = (match.group() for match in LEADING_STRUCTURE.finditer(text))
    return max((len(run) + 3 * run.count("\t") for run in runs), default=0)


def element_depth(text: str) -> int:
    """How deep the block elements of the HTML written in ``text`` nest, from their start and
    end tags (more than a browser would find: tags in code count too)."""
    depth = deepest = 0
    for closing in BLOCK_TAG.findall(text):
        if closing:
            depth = max(depth - 1, 0)
        else:
            depth += 1
            deepest = max(deepest, depth)
    return deepest


def table_cells(text: str) -> int:
    """The cells of the Markdown tables in ``text``, at most: a table's delimiter row gives its
    width, and every line up to the next blank one is a row, padded to that width."""
    cells = 0
    lines = text.splitlines()
    row = 0
    while row < len(lines):
        line = lines[row]
        if "|" in line and "-" in line:  # a table may sit in a quote or a list item
            line = LEADING_STRUCTURE.sub("", line, count=1).rstrip()
        if "|" not in line or not TABLE_DELIMITER_ROW.fullmatch(line):
            row += 1
            continue
        width = len(line.strip("|").split("|"))
        end = row + 1
        while end < len(lines) and lines[end].strip():
            end += 1
        cells += width * (end - row + 1)  # with the header row
        row = end
    return cells


def substituted_characters(text: str) -> int:
    """How many characters the substitutions of a reStructuredText ``text`` could add, at most:
    each reference, times the longest definition (its lines and the indented ones after it);
    times docutils' own limit when a definition refers to another."""
    longest = 0
    for start in SUBSTITUTION_DEFINITION.finditer(text):
        block = INDENTED_BLOCK.match(text, start.start())
        assert block is not None  # matches anything, even nothing
        definition = block.group().rstrip()
        if len(SUBSTITUTION_REFERENCE.findall(definition)) > 1:  # its own name, then another's
            longest = DOCUTILS_LINE_LENGTH_LIMIT
            break
        longest = max(longest, len(definition))
    return longest * len(SUBSTITUTION_REFERENCE.findall(text)) if longest else 0
