"""The GitHub client: retries with bounded backoff, rate limits honoured and logged, pages.

The emulator and the client share a fake clock, so waiting takes no time and a rate-limit
window really resets when the client has waited for it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from private_pypi_github.client import GitHubClient, RetryPolicy
from private_pypi_github.errors import GitHubUnavailable, RateLimited
from private_pypi_github.releases import Releases
from tests.github.conftest import FULL_NAME, OWNER, REPO
from tests.github.emulator import Emulator
from tests.github.emulator_endpoints import DROP, RATE_LIMIT, Reply
from tests.github.emulator_state import Asset, Release, new_id

REPO_PATH = f"/repos/{FULL_NAME}$"


@dataclass
class FakeClock:
    now: float = 1_900_000_000.0
    sleeps: list[float] = field(default_factory=list)

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@dataclass
class Setup:
    emulator: Emulator
    clock: FakeClock
    client: GitHubClient

    def get_repository(self) -> int:
        return self.client.request("GET", self.client.url(f"/repos/{FULL_NAME}")).status_code


@pytest.fixture
def setup() -> Iterator[Setup]:
    clock = FakeClock()
    emulator = Emulator(clock=clock.time).start()
    emulator.add_repo(OWNER, REPO)
    client = GitHubClient(
        emulator.api_url, emulator.add_token(OWNER), clock=clock.time, sleep=clock.sleep
    )
    yield Setup(emulator, clock, client)
    emulator.stop()
    assert emulator.violations == [], "\n".join(emulator.violations)


def test_dropped_connections_are_retried_after_growing_bounded_waits(setup: Setup) -> None:
    setup.emulator.fail("GET", REPO_PATH, DROP, times=2)
    assert setup.get_repository() == 200
    first, second = setup.clock.sleeps
    assert 0.25 <= first <= 0.5 and 0.5 <= second <= 1.0


def test_github_5xx_is_retried_then_reported_readably(setup: Setup) -> None:
    setup.emulator.fail("GET", REPO_PATH, Reply(502, {"message": "Server Error"}), times=10)
    with pytest.raises(GitHubUnavailable) as error:
        setup.get_repository()
    attempts = RetryPolicy().attempts
    assert str(error.value) == (
        f"GitHub answered 502 to GET /api/v3/repos/{FULL_NAME} ({attempts} attempts)"
    )
    assert len(setup.clock.sleeps) == attempts - 1
    assert sum(setup.clock.sleeps) <= RetryPolicy().max_backoff * attempts


def test_network_failure_after_the_retries_is_an_oserror(setup: Setup) -> None:
    setup.emulator.fail("GET", REPO_PATH, DROP, times=10)
    with pytest.raises(OSError, match=r"GitHub did not answer GET .* attempts"):
        setup.get_repository()


def test_secondary_rate_limit_waits_as_retry_after_says_and_logs_it(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    setup.emulator.secondary_rate_limit("GET", REPO_PATH, retry_after=7)
    with caplog.at_level(logging.WARNING, "private_pypi_github"):
        assert setup.get_repository() == 200
    assert setup.clock.sleeps == [7.0]
    assert "rate limit" in caplog.text and "HTTP 403" in caplog.text and "7 s" in caplog.text


def test_too_many_requests_waits_as_retry_after_says(setup: Setup) -> None:
    setup.emulator.too_many_requests("GET", REPO_PATH, retry_after=2)
    assert setup.get_repository() == 200
    assert setup.clock.sleeps == [2.0]


def test_used_up_rate_limit_waits_until_its_reset(setup: Setup) -> None:
    setup.emulator.exhaust_rate_limit(OWNER, reset_in=20)
    assert setup.get_repository() == 200
    [wait] = setup.clock.sleeps
    assert 20 <= wait <= 22


def test_rate_limit_reset_far_away_fails_at_once(setup: Setup) -> None:
    setup.emulator.exhaust_rate_limit(OWNER, reset_in=3000)
    with pytest.raises(RateLimited, match=r"until .* UTC"):
        setup.get_repository()
    assert setup.clock.sleeps == []


def test_last_request_of_the_window_makes_the_client_hold_the_next(setup: Setup) -> None:
    """X-RateLimit-Remaining: 0 on a success: the next request waits for the reset first,
    instead of spending a refused request."""
    setup.emulator.exhaust_rate_limit(OWNER, reset_in=30)
    setup.emulator.windows[OWNER].used = RATE_LIMIT - 1
    assert setup.get_repository() == 200
    refused_before = sum(c.status == 403 for c in setup.emulator.calls)
    assert setup.get_repository() == 200
    assert setup.clock.sleeps and 29 <= setup.clock.sleeps[0] <= 31
    assert sum(c.status == 403 for c in setup.emulator.calls) == refused_before


def test_repeated_rate_limits_give_up_after_a_bounded_number_of_waits(setup: Setup) -> None:
    for _ in range(5):
        setup.emulator.secondary_rate_limit("GET", REPO_PATH, retry_after=1)
    with pytest.raises(RateLimited):
        setup.get_repository()
    assert len(setup.clock.sleeps) == RetryPolicy().rate_limit_retries


def test_releases_and_assets_are_listed_a_page_of_100_at_a_time(setup: Setup) -> None:
    repo = setup.emulator.repo(FULL_NAME)
    repo.releases = [_release(f"demo-1.{n}", [f"demo-1.{n}.tar.gz"]) for n in range(150)]
    wide = [f"wide-1.0-py3-none-{n}.whl" for n in range(120)]
    repo.releases.insert(0, _release("wide-1.0", wide))
    releases = Releases(setup.client, FULL_NAME)

    listed = list(releases.all())
    assert len(listed) == 151
    assert sorted(a.filename for a in releases.assets(listed[0])) == sorted(wide)
    pages = [(c.path.rsplit("/", 1)[-1], c.query) for c in setup.emulator.calls]
    assert pages == [
        ("releases", {"per_page": "100"}),
        ("releases", {"per_page": "100", "page": "2"}),
        ("assets", {"per_page": "100"}),
        ("assets", {"per_page": "100", "page": "2"}),
    ]


def _release(tag: str, filenames: list[str]) -> Release:
    release = Release(new_id(), tag, tag, None, False, "main", OWNER, 0.0)
    release.assets = [
        Asset(new_id(), name, name, "application/octet-stream", b"x", "uploaded", OWNER, 0.0)
        for name in filenames
    ]
    return release
