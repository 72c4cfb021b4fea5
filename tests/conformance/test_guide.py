"""The backend guide cannot drift from the code: every Python block of
``docs/writing-a-backend.md`` is an excerpt of the example backend or of its conformance test,
which the tests install and run, and its entry point is the example's."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[2]
GUIDE = (REPOSITORY / "docs" / "writing-a-backend.md").read_text()
EXAMPLE = REPOSITORY / "docs" / "example" / "private_pypi_sqlite"
SOURCES = [
    EXAMPLE / "private_pypi_sqlite" / "__init__.py",
    REPOSITORY / "tests" / "conformance" / "test_example_backend.py",
]


def code_blocks(language: str) -> list[str]:
    """The guide's fenced blocks in ``language``, without the indent of a list item."""
    fences = re.finditer(rf"^( *)```{language}\n(.*?)^\1```", GUIDE, re.MULTILINE | re.DOTALL)
    return [
        "".join(line.removeprefix(indent) for line in block.splitlines(keepends=True))
        for indent, block in (fence.groups() for fence in fences)
    ]


BLOCKS = code_blocks("python")


def test_the_guide_shows_code() -> None:
    assert len(BLOCKS) >= 6


@pytest.mark.parametrize("block", BLOCKS, ids=[b.strip().splitlines()[0] for b in BLOCKS])
def test_every_python_block_of_the_backend_guide_is_in_the_example(block: str) -> None:
    assert any(block in source.read_text() for source in SOURCES), (
        f"the guide shows code that neither {' nor '.join(p.name for p in SOURCES)} has:\n{block}"
    )


def test_the_guides_entry_point_is_the_examples() -> None:
    [entry_point] = [block for block in code_blocks("toml") if "entry-points" in block]
    assert entry_point in (EXAMPLE / "pyproject.toml").read_text()
