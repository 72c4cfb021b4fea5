"""Plugins use only the core's public API: ``private_pypi_core.api``, ``.hookspecs`` and
``.testing``; everything else in the core is private and may change."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from private_pypi_core import api
from private_pypi_core.repository import Repository
from private_pypi_fs.backend import FileSystemBackend, FileSystemConfig
from tests.dists import make_sdist, make_wheel

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


@pytest.mark.parametrize("name", api.__all__)
def test_every_public_name_is_documented(name: str) -> None:
    guide = (REPOSITORY / "docs" / "plugin-api.md").read_text()
    assert re.search(rf"`{name}\b", guide), f"docs/plugin-api.md does not describe {name}"


class Counting(api.Progress):
    """A plugin's own ``Progress``: it counts what the core reports."""

    def __init__(self) -> None:
        self.total = self.done = 0

    def add_total(self, count: int) -> None:
        self.total += count

    def advance(self, count: int = 1) -> None:
        self.done += count


def test_the_static_export_reports_its_progress_to_a_plugin(tmp_path: Path) -> None:
    backend = FileSystemBackend(FileSystemConfig(name="team", type="file_system"), tmp_path)
    for path in (
        make_wheel(tmp_path / "d", "demo", "1.0"),
        make_sdist(tmp_path / "d", "demo", "1.0"),
    ):
        backend.write_file(api.parse_dist_filename(path.name), path)
    Repository(backend.config, tmp_path).rebuild_index()  # stores the metadata too
    rendered, exported = Counting(), Counting()
    api.render_site(backend, progress=rendered)
    api.export_site(backend, tmp_path / "site", progress=exported)
    assert (rendered.total, rendered.done) == (1, 1)  # the wheel's metadata read from the store
    assert (exported.total, exported.done) == (3, 3)  # two files and that metadata copied
    with api.progress_bar("Exporting", "files") as progress:  # what a plugin's command uses
        assert isinstance(progress, api.Progress)
