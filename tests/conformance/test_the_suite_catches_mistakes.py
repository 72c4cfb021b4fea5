"""The conformance suite catches the mistakes backend authors make: each backend of
``broken.py`` fails the test of its mistake, with a message naming the rule it broke, and no
test a correct backend could fail for another reason."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from private_pypi_core.testing import BackendConformance

REPOSITORY = Path(__file__).resolve().parents[2]
SUITE = Path(__file__).with_name("suite_on_broken_backends.py")
TESTS = sorted(name for name in dir(BackendConformance) if name.startswith("test_"))
LARGE_FILE_TESTS = {
    "test_large_file_is_stored_listed_and_read_back_whole",
    "test_large_file_passes_through_bounded_memory",
    "test_readers_never_see_a_file_before_it_is_completely_written",
    "test_listing_during_a_write_shows_complete_files_only",
}

# Test name -> its failure (message and traceback), None if it passed; by suite class.
Outcomes = dict[str, dict[str, str | None]]


@dataclass(frozen=True)
class Mistake:
    backend: str  # its class in broken.py
    caught_by: str
    message: str
    # Others it may fail too: it cannot store the large file, or a race shows it twice.
    also: frozenset[str] = field(default_factory=frozenset)


MISTAKES = [
    Mistake(
        "ThreadBoundStream",
        "test_stream_is_opened_read_and_closed_in_different_threads",
        "open_file's stream was read in another thread than the one that opened it, and "
        "failed: streams must be usable from any thread, one thread at a time: "
        "ProgrammingError: SQLite objects created in a thread can only be used in that same "
        "thread",
    ),
    Mistake(
        "SQLiteErrorsEscape",
        "test_store_failures_are_os_errors",
        "a backend raises OSError (or a subclass) when its store fails: the server answers "
        "it with 503 and Retry-After, so clients retry, and logs its message once per outage. "
        "With its store out of reach (BackendUnderTest.broken) the backend did not:\n"
        "- list_files() raised OperationalError: unable to open database file",
    ),
    Mistake(
        "VisibleWhileWriting",
        "test_readers_never_see_a_file_before_it_is_completely_written",
        "open_file found demo_pkg-1.0-py3-none-any.whl while write_file was still storing it",
        also=frozenset({"test_listing_during_a_write_shows_complete_files_only"}),
    ),
    Mistake(
        "OneValuePerFile",
        "test_large_file_passes_through_bounded_memory",
        "MiB of memory at once to store a 65.0 MiB file (the suite's max_memory_bytes: "
        "32.0 MiB): send a file on in parts, never whole",
    ),
    Mistake(
        "OneValueWithALimit",
        "test_large_file_is_stored_listed_and_read_back_whole",
        "write_file of a 65.0 MiB file failed: a backend stores files of any size up to the "
        "repository's max_file_bytes (5 GiB by default): where the store limits the size of "
        "one value, store a file in parts. OSError: SQLite database",
        also=frozenset(LARGE_FILE_TESTS),
    ),
    Mistake(
        "ListsItsTempFiles",
        "test_listing_during_a_write_shows_complete_files_only",
        "it showed '.demo_pkg-1.0-py3-none-any.whl.part', a name nothing was stored under: "
        "never list a write in progress",
    ),
]


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> Outcomes:
    """The suite run on every broken backend, once, in a pytest of its own."""
    folder = tmp_path_factory.mktemp("suite")
    report = folder / "report.xml"
    command = [sys.executable, "-m", "pytest", str(SUITE), f"--junitxml={report}", "-q"]
    run = subprocess.run(
        [*command, f"--basetemp={folder / 'tmp'}", "-p", "no:cacheprovider"],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert report.exists(), run.stdout + run.stderr
    found: Outcomes = {}
    for case in ElementTree.parse(report).iter("testcase"):
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        text = None if problem is None else f"{problem.get('message')}\n{problem.text}"
        suite_class = case.get("classname", "").rpartition(".")[2]
        found.setdefault(suite_class, {})[case.get("name", "")] = text
    return found


@pytest.mark.parametrize("mistake", MISTAKES, ids=[m.backend for m in MISTAKES])
def test_the_suite_fails_a_backend_on_its_mistake_with_the_rule_it_broke(
    mistake: Mistake, outcomes: Outcomes
) -> None:
    results = outcomes[f"Test{mistake.backend}"]
    assert sorted(results) == TESTS, "every test of the suite ran"
    failed = {name for name, failure in results.items() if failure is not None}
    caught = results[mistake.caught_by]
    assert caught is not None, f"{mistake.caught_by} passed; failed: {sorted(failed)}"
    assert mistake.message in caught
    unexpected = failed - {mistake.caught_by} - mistake.also
    assert not unexpected, "\n\n".join(f"{name}:\n{results[name]}" for name in unexpected)
