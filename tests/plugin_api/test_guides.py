"""The guides cannot drift from the code: every code block of the auth provider guide is an
excerpt of the example plugin the tests install and run."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[2]
GUIDE = REPOSITORY / "docs" / "writing-an-auth-provider.md"
EXAMPLE = REPOSITORY / "tests" / "plugins" / "private_pypi_htpasswd"
BLOCKS = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), re.DOTALL)


@pytest.mark.parametrize("block", BLOCKS, ids=[b.splitlines()[0] for b in BLOCKS])
def test_every_code_block_of_the_auth_provider_guide_is_in_the_example(block: str) -> None:
    source = (EXAMPLE / "private_pypi_htpasswd" / "__init__.py").read_text()
    assert block in source, f"the guide shows code the example does not have:\n{block}"


def test_the_guides_entry_point_is_the_examples() -> None:
    entry_point = re.search(r"```toml\n(\[project\.entry-points.*?)```", GUIDE.read_text(), re.S)
    assert entry_point is not None
    assert entry_point.group(1) in (EXAMPLE / "pyproject.toml").read_text()
