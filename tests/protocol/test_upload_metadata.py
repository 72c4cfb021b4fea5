"""Core metadata is read at upload: a file whose metadata is missing, broken or names another
project or version is refused with a readable 400 and leaves no trace (in process)."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.protocol.dists_extra import (
    core_metadata,
    make_corrupt_wheel,
    make_rich_wheel,
    make_sdist_with_metadata,
    make_wheel_with_two_metadata,
    make_wheel_without_metadata,
    module_name,
)
from tests.protocol.helpers import JSON_V1, LocalIndex, media_type


def _sdist_without_pkg_info(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "bad_sdist-1.0.tar.gz"
    with tarfile.open(path, "w:gz") as sdist:
        data = b'[project]\nname = "bad-sdist"\n'
        info = tarfile.TarInfo("bad_sdist-1.0/pyproject.toml")
        info.size = len(data)
        sdist.addfile(info, io.BytesIO(data))
    return path


def _truncated_sdist(directory: Path) -> Path:
    good = make_sdist_with_metadata(
        directory, "cut-sdist", "1.0", core_metadata("cut-sdist", "1.0", metadata_version="2.2")
    )
    good.write_bytes(good.read_bytes()[:40])
    return good


BAD_FILES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "corrupt-zip": (lambda d: make_corrupt_wheel(d, "bad-zip", "1.0"), "not a valid archive"),
    "no-metadata": (
        lambda d: make_wheel_without_metadata(d, "no-meta", "1.0"),
        "exactly one .dist-info/METADATA",
    ),
    "two-metadata": (
        lambda d: make_wheel_with_two_metadata(d, "two-meta", "1.0"),
        "exactly one .dist-info/METADATA",
    ),
    "other-project": (
        lambda d: make_rich_wheel(d, "claimed", "1.0", core_metadata("someone-else", "1.0")),
        "names project 'someone-else'",
    ),
    "other-version": (
        lambda d: make_rich_wheel(d, "claimed", "1.0", core_metadata("claimed", "6.6.6")),
        "names version '6.6.6'",
    ),
    "no-name": (
        lambda d: make_rich_wheel(d, "nameless", "1.0", "Metadata-Version: 2.1\nVersion: 1.0\n\n"),
        "lacks a Name or Version",
    ),
    "sdist-other-project": (
        lambda d: make_sdist_with_metadata(
            d, "sd-claimed", "1.0", core_metadata("not-me", "1.0", metadata_version="2.2")
        ),
        "names project 'not-me'",
    ),
    "sdist-no-pkg-info": (_sdist_without_pkg_info, "no top-level PKG-INFO"),
    "sdist-truncated": (_truncated_sdist, "not a valid archive"),
}


def _visible_state(index: LocalIndex) -> tuple[object, ...]:
    """What clients can see, and what is stored."""
    root = json.loads(index.get("/simple/", JSON_V1).text)
    kept = json.loads(index.get("/simple/keep-pkg/", JSON_V1).text)
    return root, kept, index.stored_files()


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_an_upload_with_bad_metadata_is_refused_readably_and_stores_nothing(
    index: LocalIndex, tmp_path: Path, case: str
) -> None:
    index.publish(make_rich_wheel(tmp_path / "keep", "keep-pkg", "1.0"))
    before = _visible_state(index)
    build, message = BAD_FILES[case]
    bad = build(tmp_path / "bad")

    result = index.upload(bad)

    assert result.status_code == 400, result.text
    assert media_type(result.headers.get("content-type")) == "text/plain"
    assert message in result.text, result.text
    assert bad.name in result.text, result.text
    assert _visible_state(index) == before
    assert not any(bad.name in name for name in index.stored_files())
    project = bad.name.split("-")[0].replace("_", "-")
    assert index.get(f"/simple/{project}/").status_code == 404
    assert index.get(f"/simple/{project}/{bad.name}.metadata").status_code == 404
    assert not [p for p in (index.root / "tmp").iterdir() if p.is_file()], "temp files left"


def test_a_refused_upload_can_be_retried_with_a_good_file_of_that_name(
    index: LocalIndex, tmp_path: Path
) -> None:
    bad = make_rich_wheel(tmp_path / "bad", "retry-pkg", "1.0", core_metadata("retry-pkg", "9"))
    assert index.upload(bad).status_code == 400
    good = make_rich_wheel(tmp_path / "good", "retry-pkg", "1.0")
    assert good.name == bad.name
    result = index.upload(good)
    assert result.status_code == 200, result.text
    served = index.get(f"/simple/retry-pkg/{good.name}.metadata")
    assert served.status_code == 200
    assert b"Version: 1.0\n" in served.content


def test_metadata_naming_the_project_and_version_in_another_spelling_is_accepted(
    index: LocalIndex, tmp_path: Path
) -> None:
    """Names compare normalised (PEP 503) and versions as versions (PEP 440)."""
    wheel = make_rich_wheel(
        tmp_path, "spelled-pkg", "1.0", core_metadata("Spelled.PKG", "1.0.0", summary="same")
    )
    assert module_name("spelled-pkg") in wheel.name
    result = index.upload(wheel)
    assert result.status_code == 200, result.text
    assert index.get(f"/simple/spelled-pkg/{wheel.name}.metadata").status_code == 200
