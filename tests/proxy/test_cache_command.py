"""``private_pypi cache stats`` and ``cache prune`` on a real server's proxy repository, its
files cached from a loopback upstream."""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.core.test_cli import assert_one_line_error, run
from tests.dists import make_wheel
from tests.proxy.support import download, page, proxy_table, serving, sha256, team_table
from tests.proxy.upstream import StaticUpstream
from tests.server import RunningServer

PROJECTS = ("alpha", "beta", "gamma")  # cached in this order: alpha is the oldest
HOUR = 3600


@dataclass
class Cache:
    server: RunningServer
    upstream: StaticUpstream
    config: Path
    wheels: dict[str, Path]  # by project, as the upstream serves them

    def command(self, *args: str) -> subprocess.CompletedProcess[str]:
        root = str(self.server.root)
        return run("cache", *args, "--root", root, "--config", str(self.config))

    def stored(self, project: str, suffix: str = "") -> Path:
        """Where the fs store keeps a cached file of ``project`` (or its companion)."""
        filename = self.wheels[project].name + suffix
        return self.server.root / "cache" / "pypi" / "storage" / project / filename

    def fetch(self, project: str, suffix: str = "") -> bytes:
        """Download a wheel of ``project`` (or its companion) through the proxy."""
        answer = download(self.server, "pypi", project, self.wheels[project].name + suffix)
        assert answer.status_code == 200, answer.text
        return answer.content

    def fetches(self, project: str) -> int:
        """How many times the upstream was asked for the wheel of ``project`` itself."""
        name = self.wheels[project].name
        return sum(path.endswith(f"/{name}") for _, path, _ in self.upstream.requests)

    def age(self, project: str, seconds: float) -> None:
        """Make the wheel of ``project`` and its companions cached ``seconds`` ago."""
        moment = time.time() - seconds
        for suffix in ("", ".metadata"):
            if self.stored(project, suffix).exists():
                os.utime(self.stored(project, suffix), (moment, moment))


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[Cache]:
    """A server with a proxy ``pypi`` whose 3 wheels (and alpha's metadata) are cached, and a
    repository ``team`` holding its own files."""
    with StaticUpstream(tmp_path / "upstream") as upstream:
        wheels = {}
        for number, project in enumerate(PROJECTS, 1):
            payload = os.urandom(2000 * number).hex()  # 3 to 8 kB: sizes apart
            wheels[project] = make_wheel(tmp_path / "dist", project, "1.0", payload=payload)
            upstream.add(wheels[project])
            upstream.add(make_wheel(tmp_path / "dist", project, "2.0"))  # listed, never cached
        repositories = {"pypi": proxy_table(upstream.simple_url), "team": team_table()}
        root = tmp_path / "root"
        with serving(root, repositories) as server:
            cached = Cache(server, upstream, tmp_path / "root-config.toml", wheels)
            for project in PROJECTS:
                assert page(server, "pypi", project).status_code == 200
                cached.fetch(project)
            cached.fetch("alpha", ".metadata")
            yield cached


def sizes(cache: Cache, *projects: str) -> int:
    """The bytes the wheels of ``projects`` and their companions take in the cache."""
    paths = [cache.stored(p, suffix) for p in projects for suffix in ("", ".metadata")]
    return sum(path.stat().st_size for path in paths if path.exists())


def fields(output: str) -> dict[str, str]:
    """The ``Label:   value`` lines of ``cache stats``."""
    return dict(re.findall(r"^([A-Z][a-z ]+):\s+(.*)$", output, re.MULTILINE))


def test_stats_counts_what_is_listed_and_what_is_cached(cache: Cache) -> None:
    result = cache.command("stats", "pypi")
    assert result.returncode == 0, result
    shown = fields(result.stdout)
    assert shown["Repository"] == f"pypi (proxy of {cache.upstream.simple_url})"
    assert shown["Projects listed"] == "3"
    assert shown["Files listed"] == "6"  # versions 1.0 and 2.0 of each
    wheels = sum(cache.stored(project).stat().st_size for project in PROJECTS)
    assert shown["Files cached"].startswith("3 (") and f"{wheels:,} bytes)" in shown["Files cached"]
    metadata = cache.stored("alpha", ".metadata").stat().st_size
    assert shown["Companions cached"].startswith(f"1 ({metadata:,} bytes): .metadata and ")
    assert shown["Cache size"].endswith(f"({wheels + metadata:,} bytes)")
    assert shown["Oldest cached"].endswith(" ago)") and shown["Newest cached"].endswith(" ago)")


def test_prune_to_a_size_removes_the_oldest_first_and_they_are_fetched_again(
    cache: Cache,
) -> None:
    original = cache.wheels["alpha"].read_bytes()
    for hours, project in enumerate(reversed(PROJECTS), 1):
        cache.age(project, hours * HOUR)  # alpha 3 hours ago, beta 2, gamma 1
    limit = sizes(cache, "beta", "gamma")
    result = cache.command("prune", "pypi", "--max-size", str(limit))
    assert result.returncode == 0, result
    kept = f"2 files ({limit / 1000:.1f} kB)"
    assert "Removed 1 file (" in result.stdout and f"from 'pypi'; {kept} remain" in result.stdout
    assert not cache.stored("alpha").exists()
    assert not cache.stored("alpha", ".metadata").exists()  # a companion goes with its file
    assert cache.stored("beta").exists() and cache.stored("gamma").exists()

    assert cache.fetches("alpha") == 1
    assert page(cache.server, "pypi", "alpha").status_code == 200  # still listed
    assert cache.fetch("alpha") == original
    assert cache.fetches("alpha") == 2  # fetched again from the upstream
    assert sha256(cache.stored("alpha").read_bytes()) == sha256(original)

    smaller = cache.command("prune", "pypi", "--max_size", "1K")
    assert smaller.returncode == 0, smaller
    assert "Removed 3 files" in smaller.stdout and "; 0 files (0 bytes) remain" in smaller.stdout


def test_prune_by_age_and_a_dry_run_that_removes_nothing(cache: Cache) -> None:
    cache.age("alpha", 3 * 24 * HOUR)
    cache.age("beta", 24 * HOUR)
    before = {p: cache.stored(p).stat().st_mtime for p in PROJECTS}

    dry = cache.command("prune", "pypi", "--older-than", "12h", "--dry-run")
    assert dry.returncode == 0, dry
    would = [line for line in dry.stdout.splitlines() if line.startswith("Would remove ")]
    assert [line.split()[2] for line in would[:-1]] == [
        cache.wheels["alpha"].name,  # the oldest first
        cache.wheels["beta"].name,
    ]
    assert would[-1].startswith("Would remove 2 files (") and "1 file (" in would[-1]
    assert {p: cache.stored(p).stat().st_mtime for p in PROJECTS} == before
    assert cache.stored("alpha", ".metadata").exists()

    result = cache.command("prune", "pypi", "--older-than", "2d")
    assert result.returncode == 0, result
    assert "Removed 1 file (" in result.stdout and "2 files (" in result.stdout
    assert not cache.stored("alpha").exists() and not cache.stored("alpha", ".metadata").exists()
    assert cache.stored("beta").exists() and cache.stored("gamma").exists()
    stats = fields(cache.command("stats", "pypi").stdout)
    assert stats["Files cached"].startswith("2 (") and stats["Files listed"] == "6"


def test_mistakes_are_one_line_errors(cache: Cache) -> None:
    assert_one_line_error(cache.command("stats", "team"), "'team' is not a proxy repository")
    assert_one_line_error(
        cache.command("prune", "team", "--max-size", "1G"), "'team' is not a proxy repository"
    )
    assert_one_line_error(cache.command("stats", "nope"), "no repository [nope]")
    assert_one_line_error(cache.command("prune", "pypi"), "--older_than", "--max_size")
    assert_one_line_error(cache.command("prune", "pypi", "--max-size", "lots"), "'lots'")
    assert_one_line_error(cache.command("prune", "pypi", "--older-than", "soon"), "'soon'")
    # Nothing was removed by any of them.
    assert all(cache.stored(project).exists() for project in PROJECTS)
