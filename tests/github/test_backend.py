"""The GitHub backend's own behaviour: naming, uploads, downloads, auth and the index file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from private_pypi_core.backend import Access, FileExists
from private_pypi_core.dists import parse_dist_filename
from private_pypi_github.client import RetryPolicy
from private_pypi_github.errors import GitHubError
from private_pypi_github.models import Asset, Release
from private_pypi_github.releases import Releases
from tests.github.conftest import FULL_NAME, OWNER, Scene
from tests.github.emulator_endpoints import Reply

Source = Callable[[str, bytes], Path]
LOCAL_WHEEL = "demo_pkg-1.0+abc.7-py3-none-any.whl"


def test_local_version_and_companion_file_round_trip_through_asset_labels(
    scene: Scene, source: Source
) -> None:
    backend = scene.backend()
    dist = parse_dist_filename(LOCAL_WHEEL)
    backend.write_file(dist, source(LOCAL_WHEEL, b"wheel"))
    backend.write_file(dist.companion(".metadata"), source(LOCAL_WHEEL + ".metadata", b"meta"))

    assert sorted(f.filename for f in backend.list_files()) == [
        LOCAL_WHEEL,
        LOCAL_WHEEL + ".metadata",
    ]
    stored = {(tag, a.name, a.label) for tag, a in scene.emulator.assets(FULL_NAME)}
    assert stored == {
        ("demo-pkg-1.0+abc.7", "demo_pkg-1.0.abc.7-py3-none-any.whl", LOCAL_WHEEL),
        (
            "demo-pkg-1.0+abc.7",
            "demo_pkg-1.0.abc.7-py3-none-any.whl.metadata",
            LOCAL_WHEEL + ".metadata",
        ),
    }
    with backend.open_file(dist) as stream:
        assert stream.read() == b"wheel"


def test_one_release_per_project_version(scene: Scene, source: Source) -> None:
    backend = scene.backend()
    for filename in ["demo-1.0.tar.gz", "demo-1.0-py3-none-any.whl", "demo-2.0.tar.gz"]:
        backend.write_file(parse_dist_filename(filename), source(filename, filename.encode()))
    releases = scene.emulator.repo(FULL_NAME).releases
    assert sorted((r.tag_name, len(r.assets)) for r in releases) == [
        ("demo-1.0", 2),
        ("demo-2.0", 1),
    ]


def test_asset_misplaced_in_another_release_is_not_listed(scene: Scene, source: Source) -> None:
    backend = scene.backend()
    backend.write_file(parse_dist_filename("demo-1.0.tar.gz"), source("demo-1.0.tar.gz", b"1"))
    release = backend.releases.by_tag("demo-1.0")
    assert release is not None
    backend.releases.upload(release, source("other-2.0.tar.gz", b"2"), "other-2.0.tar.gz")
    assert [f.filename for f in backend.list_files()] == ["demo-1.0.tar.gz"]


def test_interrupted_upload_is_retried_and_its_leftover_replaced(
    scene: Scene, source: Source
) -> None:
    """GitHub answers 502 and keeps an incomplete asset; the retry meets 422, removes the
    leftover and uploads again."""
    backend = scene.backend()
    scene.emulator.interrupt_next_upload()
    dist = parse_dist_filename("demo-1.0.tar.gz")
    backend.write_file(dist, source("demo-1.0.tar.gz", b"sdist"))
    uploads = [c.status for c in scene.emulator.calls if c.host == "uploads"]
    assert uploads == [502, 422, 201]
    assert len(scene.sleeps) == 1, "one backoff after the 502"
    [(_, asset)] = scene.emulator.assets(FULL_NAME)
    assert (asset.state, asset.data) == ("uploaded", b"sdist")
    with backend.open_file(dist) as stream:
        assert stream.read() == b"sdist"


def test_leftover_of_a_failed_upload_is_never_listed_and_is_cleaned_up_later(
    scene: Scene, source: Source
) -> None:
    backend = scene.backend()
    backend.client.policy = RetryPolicy(attempts=1)  # no retry: the leftover stays
    scene.emulator.interrupt_next_upload()
    dist = parse_dist_filename("demo-1.0.tar.gz")
    with pytest.raises(GitHubError, match="502"):
        backend.write_file(dist, source("demo-1.0.tar.gz", b"sdist"))
    assert [a.state for _, a in scene.emulator.assets(FULL_NAME)] == ["open"]
    assert list(backend.list_files()) == []
    with pytest.raises(FileNotFoundError):
        backend.open_file(dist)

    backend.write_file(dist, source("demo-1.0.tar.gz", b"sdist"))
    assert [a.state for _, a in scene.emulator.assets(FULL_NAME)] == ["uploaded"]


def test_upload_racing_another_servers_upload_is_refused_as_existing(
    scene: Scene, source: Source, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other server's asset appears after this one looked: GitHub's 422 decides."""
    dist = parse_dist_filename("demo-1.0.tar.gz")
    scene.backend().write_file(dist, source("demo-1.0.tar.gz", b"first"))
    looked = []
    real_assets = Releases.assets

    def stale_first_look(self: Releases, release: Release) -> tuple[Asset, ...]:
        looked.append(release)
        return () if len(looked) == 1 else real_assets(self, release)

    monkeypatch.setattr(Releases, "assets", stale_first_look)
    with pytest.raises(FileExists):
        scene.backend().write_file(dist, source("demo-1.0.tar.gz", b"second"))
    assert [c.status for c in scene.emulator.calls if c.host == "uploads"] == [201, 422]
    [(_, asset)] = scene.emulator.assets(FULL_NAME)
    assert asset.data == b"first"


def test_release_in_an_empty_repository_is_refused_with_advice(
    scene: Scene, source: Source
) -> None:
    scene.emulator.add_repo(OWNER, "empty", initialized=False)
    backend = scene.backend(repo="empty")
    with pytest.raises(GitHubError, match=r"Repository is empty.*init_pkg_repo"):
        backend.write_file(parse_dist_filename("demo-1.0.tar.gz"), source("demo-1.0.tar.gz", b"x"))


def test_download_url_is_a_short_lived_signed_url_fetched_without_credentials(
    scene: Scene, source: Source
) -> None:
    backend = scene.backend()
    dist = parse_dist_filename("demo-1.0.tar.gz")
    backend.write_file(dist, source("demo-1.0.tar.gz", b"sdist bytes"))
    url = backend.download_url(dist)
    assert url is not None and url.startswith(scene.emulator.hosts.objects)
    assert requests.get(url, timeout=5).content == b"sdist bytes"
    refused = requests.get(url, headers={"Authorization": f"Bearer {scene.reader}"}, timeout=5)
    assert refused.status_code == 400, "the signed URL host refuses a second credential"
    assert scene.emulator.violations.pop().startswith("Authorization header sent")


def test_open_file_streams_from_the_signed_url_without_the_token(
    scene: Scene, source: Source
) -> None:
    backend = scene.backend()
    dist = parse_dist_filename("demo-1.0.tar.gz")
    backend.write_file(dist, source("demo-1.0.tar.gz", b"x" * 300_000))
    with backend.open_file(dist) as stream:
        assert stream.read(1000) == b"x" * 1000
        assert len(stream.read()) == 299_000
    signed = [c for c in scene.emulator.calls if c.host == "objects"]
    assert signed and all("Authorization" not in c.headers for c in signed)


def test_deleted_file_is_not_offered_for_download(scene: Scene, source: Source) -> None:
    writer, other_server = scene.backend(), scene.backend()
    dist = parse_dist_filename("demo-1.0.tar.gz")
    writer.write_file(dist, source("demo-1.0.tar.gz", b"x"))
    assert other_server.download_url(dist) is not None  # remembers where the asset was
    writer.delete_file(dist)
    assert other_server.download_url(dist) is None
    with pytest.raises(FileNotFoundError):
        other_server.open_file(dist)


@pytest.mark.parametrize(
    ("role", "access"),
    [
        ("admin", Access.WRITE),
        ("maintain", Access.WRITE),
        ("push", Access.WRITE),
        ("triage", Access.READ),
        ("pull", Access.READ),
    ],
)
def test_access_follows_the_users_role_in_the_repository(
    scene: Scene, role: str, access: Access
) -> None:
    scene.emulator.repo(FULL_NAME).roles["carol"] = role
    assert scene.backend().token_access(scene.emulator.add_token("carol")) is access


def test_private_repository_hidden_from_a_token_gives_no_access(scene: Scene) -> None:
    assert scene.backend().token_access(scene.stranger) is Access.NONE
    assert scene.emulator.api_calls()[-1].status == 404


def test_unknown_token_gives_no_access(scene: Scene) -> None:
    assert scene.backend().token_access("ghp_" + "0" * 36) is Access.NONE
    assert scene.emulator.api_calls()[-1].status == 401


@pytest.mark.parametrize("secret", ["", "two words", "new\nline", "caf\u00e9", "x" * 2000])
def test_what_cannot_be_a_token_is_refused_without_asking_github(scene: Scene, secret: str) -> None:
    assert scene.backend().token_access(secret) is Access.NONE
    assert scene.emulator.api_calls() == []


@pytest.mark.parametrize(
    ("scopes", "private", "access"),
    [
        ("repo, workflow", True, Access.WRITE),
        ("read:org", True, Access.NONE),  # GitHub hides the private repository
        ("public_repo", False, Access.WRITE),
        ("", False, Access.READ),
    ],
)
def test_classic_token_may_write_only_with_a_writing_scope(
    scene: Scene, scopes: str, private: bool, access: Access
) -> None:
    scene.emulator.repo(FULL_NAME).private = private
    token = scene.emulator.add_token(OWNER, scopes=scopes)
    assert scene.backend().token_access(token) is access


def test_index_file_lives_on_the_default_branch_unless_told(scene: Scene) -> None:
    scene.backend().write_index(b'{"format":1}\n', replaces=None)
    assert scene.emulator.files(FULL_NAME)["index.json"] == b'{"format":1}\n'

    repo = scene.emulator.repo(FULL_NAME)
    repo.branches["packages-index"] = repo.branches["main"]
    backend = scene.backend(branch="packages-index", index_filename="meta/index.json")
    backend.write_index(b"elsewhere", replaces=None)
    assert scene.emulator.files(FULL_NAME, "packages-index")["meta/index.json"] == b"elsewhere"
    assert "meta/index.json" not in scene.emulator.files(FULL_NAME)


def test_unchanged_index_is_read_with_a_304_that_costs_no_rate_limit(scene: Scene) -> None:
    backend = scene.backend()
    backend.write_index(b"index v1", replaces=None)
    first = backend.read_index()
    used = scene.emulator.windows[OWNER].used
    assert backend.read_index() == first
    last = scene.emulator.api_calls()[-1]
    assert (last.status, "If-None-Match" in last.headers) == (304, True)
    assert scene.emulator.windows[OWNER].used == used


def test_index_write_refused_by_a_branch_rule_is_an_error_not_a_conflict(scene: Scene) -> None:
    backend = scene.backend()
    backend.write_index(b"index v1", replaces=None)
    current = backend.read_index()
    rule = {"message": "Repository rule violations found", "documentation_url": "https://x"}
    scene.emulator.fail("PUT", "/contents/", Reply(409, rule))
    with pytest.raises(GitHubError, match="rule violations"):
        backend.write_index(b"index v2", replaces=current)


def test_index_over_a_megabyte_is_read_from_its_blob(scene: Scene) -> None:
    backend = scene.backend()
    data = b"x" * (1 << 20) + b"more"
    backend.write_index(data, replaces=None)
    index = backend.read_index()
    assert index is not None and index.data == data


def test_index_of_a_repository_the_token_cannot_see_is_an_error_not_empty(
    scene: Scene,
) -> None:
    scene.backend().write_index(b"index", replaces=None)
    backend = scene.backend(token=scene.stranger, branch="main")
    with pytest.raises(GitHubError, match="cannot see it"):
        backend.read_index()


def test_tokens_never_show_in_reprs_or_errors(scene: Scene) -> None:
    backend = scene.backend()
    scene.emulator.repo(FULL_NAME).roles.pop("bob")
    shown = [repr(backend.config), repr(backend.client), repr(backend.client._auth)]
    with pytest.raises(GitHubError) as error:
        scene.backend(token=scene.reader).repository()
    shown.append(str(error.value))
    assert not any(scene.writer in text or scene.reader in text for text in shown), shown
