"""Plugins use only the core's public API: ``private_pypi_core.api``, ``.hookspecs`` and
``.testing``; everything else in the core is private and may change."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from private_pypi_core import api

PUBLIC = {"private_pypi_core.api", "private_pypi_core.hookspecs", "private_pypi_core.testing"}
REPOSITORY = Path(__file__).resolve().parents[2]
PLUGIN_SOURCES = sorted(
    path
    for folder in ("plugins", "tests/plugins", "docs")
    for path in (REPOSITORY / folder).rglob("*.py")
)


def core_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
    return [name for name in found if name.split(".")[0] == "private_pypi_core"]


@pytest.mark.parametrize(
    "path", PLUGIN_SOURCES, ids=[str(p.relative_to(REPOSITORY)) for p in PLUGIN_SOURCES]
)
def test_a_plugin_imports_only_the_public_api(path: Path) -> None:
    private = [name for name in core_imports(path) if name not in PUBLIC]
    assert not private, f"{path.relative_to(REPOSITORY)} imports private core modules: {private}"


def test_the_public_api_names_what_it_exports() -> None:
    assert sorted(api.__all__) == sorted(
        name for name in vars(api) if not name.startswith("_") and name not in {"annotations"}
    )
