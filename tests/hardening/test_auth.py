"""Credentials against a real server (2 workers): repeated failures slowed within bounds, the
session cookie's flags (Secure only behind a trusted proxy saying https), the login form's
CSRF token, and who may POST /initialize/."""

from __future__ import annotations

import base64
import re
import statistics
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.hardening.support import (
    PeakMemory,
    ServerSpec,
    auth,
    client_at,
    fs_table,
    read_auth,
    upload,
    wheel_bytes,
    wheel_name,
)
from tests.server import RunningServer, start_server

SESSION_COOKIE = "private_pypi_session"
CSRF_COOKIE = "private_pypi_login_csrf"
FREE_FAILURES = 5  # FailureThrottle: then 0.1 s, doubling, at most 2 s
MAX_DELAY = 2.0


def configured(tmp_path_factory: pytest.TempPathFactory, name: str, *flags: str) -> RunningServer:
    spec = ServerSpec(
        tmp_path_factory.mktemp(name) / "root",
        {"local": fs_table("local")},
        ("--workers=2", *flags),
    )
    return spec.start()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """Default proxy trust: none, X-Forwarded-* is ignored from every address."""
    running = configured(tmp_path_factory, "auth")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def trusted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """The operator named the proxy: 127.0.0.1, where the test client connects from."""
    running = configured(tmp_path_factory, "trusted", "--forwarded_allow_ips=127.0.0.1")
    yield running
    running.stop()


def wrong(server: RunningServer, repository: str = "local") -> dict[str, str]:
    return auth(repository, "not-" + server.secret(repository, "read"))


def timed_failures(
    client: requests.Session, url: str, headers_for: list[dict[str, str]]
) -> list[float]:
    """The time each failed request took to be answered (each must be a 401)."""
    times = []
    for headers in headers_for:
        start = time.monotonic()
        response = client.get(url, headers=headers, timeout=10)
        times.append(time.monotonic() - start)
        assert response.status_code == 401, response.text
    return times


# --- Repeated failures ------------------------------------------------------------------------


def test_repeated_wrong_secrets_are_slowed_within_bounds_and_a_right_one_still_works(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    server = configured(tmp_path_factory, "throttle")
    try:
        # One keep-alive connection: one worker, which counts this client's failures.
        with requests.Session() as client:
            times = timed_failures(client, server.simple_url, [wrong(server)] * 11)
            assert max(times[:FREE_FAILURES]) < 0.3, times
            assert times[5] >= 0.08, f"the 6th failure was not slowed: {times}"
            assert times[9] >= times[0] + 1.0, f"the 10th failure is not much slower: {times}"
            assert times[10] >= MAX_DELAY - 0.2, f"the delay does not reach its cap: {times}"
            assert max(times) < MAX_DELAY + 0.5, f"a failure waited more than ~2.5 s: {times}"

            start = time.monotonic()
            response = client.get(server.simple_url, headers=read_auth(server), timeout=10)
            assert response.status_code == 200
            assert time.monotonic() - start < 0.5, "the right secret was slowed too"
            # A success clears nothing: the failures only expire.
            later = timed_failures(client, server.simple_url, [wrong(server)])
            assert later[0] >= MAX_DELAY - 0.2, later
    finally:
        server.stop()


def test_a_success_in_another_repository_does_not_clear_the_failures(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The attacker owns repository ``mine`` and guesses at ``local``'s secret."""
    spec = ServerSpec(
        tmp_path_factory.mktemp("two") / "root",
        {"local": fs_table("local"), "mine": fs_table("mine")},
        ("--workers=1",),
    )
    server = spec.start()
    try:
        with requests.Session() as client:
            timed_failures(client, server.simple_url, [wrong(server)] * 9)
            own = client.get(server.simple_url, headers=read_auth(server, "mine"), timeout=10)
            assert own.status_code == 200
            after = timed_failures(client, server.simple_url, [wrong(server)])
            assert after[0] >= 1.0, f"the success in 'mine' reset the count: {after}"
    finally:
        server.stop()


def test_parallel_guesses_are_checked_no_faster_than_sequential_ones(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """100 guesses at once, each on its own connection (both workers): only a few are checked
    within seconds, the rest wait their turn or are refused unchecked with 429."""
    server = configured(tmp_path_factory, "parallel")
    try:
        start = time.monotonic()

        def guess(_: int) -> tuple[int, float, str | None]:
            response = requests.get(server.simple_url, headers=wrong(server), timeout=30)
            return (
                response.status_code,
                time.monotonic() - start,
                response.headers.get("Retry-After"),
            )

        with ThreadPoolExecutor(max_workers=100) as pool:
            answers = list(pool.map(guess, range(100)))
        checked_early = [a for a in answers if a[0] == 401 and a[1] < 3.0]
        refused = [a for a in answers if a[0] == 429]
        assert {status for status, _, _ in answers} <= {401, 429}, answers
        # Per worker: 5 free failures, then 2 at a time held back 0.1 s, 0.2 s, 0.4 s...
        assert len(checked_early) <= 2 * (FREE_FAILURES + 8), sorted(a[1] for a in answers)
        assert refused, "no guess was refused while the others waited"
        assert all(retry_after for _, _, retry_after in refused), refused
    finally:
        server.stop()


def test_failures_from_many_addresses_at_one_repository_are_slowed(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """30 clients, one guess each: every client is new, but the repository counts them all."""
    server = configured(tmp_path_factory, "spread", "--workers=1")
    try:
        times = []
        for i in range(30):
            with client_at(f"127.0.3.{i + 1}") as client:
                times += timed_failures(client, server.simple_url, [wrong(server)])
        assert max(times[:15]) < 0.3, times
        assert times[25] >= 0.5, f"guesses spread over addresses were not slowed: {times}"
    finally:
        server.stop()


def test_forged_x_forwarded_for_from_loopback_is_ignored_by_default(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """A client on the server's own host (127.0.0.1) picks a new address for each guess."""
    server = configured(tmp_path_factory, "forged", "--workers=1")
    try:
        forged = [{**wrong(server), "X-Forwarded-For": f"203.0.113.{i}"} for i in range(10)]
        with requests.Session() as client:
            times = timed_failures(client, server.simple_url, forged)
        assert times[9] >= times[0] + 1.0, f"a new X-Forwarded-For reset the count: {times}"
    finally:
        server.stop()


def test_x_forwarded_for_from_a_proxy_the_operator_named_names_the_client(
    trusted: RunningServer,
) -> None:
    """Behind a trusted proxy every forwarded client has its own count (documented trust)."""
    forwarded = [{**wrong(trusted), "X-Forwarded-For": f"198.51.100.{i}"} for i in range(10)]
    with requests.Session() as client:
        times = timed_failures(client, trusted.simple_url, forwarded)
    assert max(times) < 0.3, times


def test_distinct_oversized_authorization_headers_are_not_kept(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """800 distinct 1 MiB headers kept a worker at +400 MB through the parse cache; headers
    the server takes at all (under its head limit) are not credentials past 4 KiB, and are
    never cached."""
    server = configured(tmp_path_factory, "big-headers", "--workers=1")
    try:
        memory = PeakMemory(server, 1)
        with client_at("127.0.7.1") as client:
            for i in range(2500):
                secret = f"{i:06d}" + "s" * 5_000
                token = base64.b64encode(f"local:{secret}".encode()).decode()
                response = client.get(
                    f"{server.url}/index_mtime/",
                    headers={"Authorization": f"Basic {token}"},
                    timeout=10,
                )
                assert response.status_code == 401
        assert memory.growth_kib() < 6_000, "the worker keeps what it was sent"
    finally:
        server.stop()


# --- One answer for a wrong name and a wrong secret ---------------------------------------------


def test_a_wrong_repository_name_and_a_wrong_secret_answer_alike(server: RunningServer) -> None:
    """Text, headers and timing: an attacker cannot tell which repository names exist."""
    samples: dict[str, list[float]] = {"local": [], "nosuch": []}
    answers = {}
    for i in range(8):
        for name in samples:
            # A new address each time: no client's own throttle comes into play.
            with client_at(f"127.0.5.{2 * i + (name == 'local') + 1}") as client:
                start = time.monotonic()
                response = client.get(
                    server.simple_url, headers=auth(name, "guess-" + name), timeout=10
                )
                samples[name].append(time.monotonic() - start)
            answers[name] = (
                response.status_code,
                response.text,
                response.headers.get("WWW-Authenticate"),
            )
    assert answers["local"] == answers["nosuch"]
    assert answers["local"][:2] == (401, "Wrong package repository name or secret.\n")
    difference = abs(statistics.median(samples["local"]) - statistics.median(samples["nosuch"]))
    assert difference < 0.005, samples


def test_login_answers_a_wrong_name_and_a_wrong_secret_alike(server: RunningServer) -> None:
    pages = []
    for name in ("local", "nosuch"):
        with client_at(f"127.0.6.{len(pages) + 1}") as client:
            response = client.get(f"{server.url}/login/", timeout=10)
            token = re.search(r'name="csrf" value="([^"]+)"', response.text)
            assert token is not None
            answer = client.post(
                f"{server.url}/login/",
                data={"repository": name, "secret": "guess", "csrf": token.group(1)},
                allow_redirects=False,
                timeout=10,
            )
        assert answer.status_code == 401
        pages.append(re.sub(r'value="[^"]+"', "", answer.text))
    assert pages[0] == pages[1]


# --- The login form and the session cookie ----------------------------------------------------


def set_cookies(response: requests.Response) -> dict[str, tuple[str, set[str]]]:
    """Each Set-Cookie of ``response``: name -> (value, lowercased attributes)."""
    cookies = {}
    for header in response.raw.headers.getlist("Set-Cookie"):
        pair, *attributes = [part.strip() for part in header.split(";")]
        name, _, value = pair.partition("=")
        cookies[name] = (value, {attribute.lower() for attribute in attributes})
    return cookies


def login_form(server: RunningServer, headers: dict[str, str]) -> tuple[str, str, set[str]]:
    """The CSRF token in the form, the CSRF cookie's value and its attributes."""
    response = requests.get(f"{server.url}/login/", headers=headers, timeout=10)
    assert response.status_code == 200
    match = re.search(r'name="csrf" value="([^"]+)"', response.text)
    assert match is not None, response.text
    value, attributes = set_cookies(response)[CSRF_COOKIE]
    return match.group(1), value, attributes


def post_login(
    server: RunningServer,
    *,
    csrf_field: str | None,
    csrf_cookie: str | None,
    headers: dict[str, str] | None = None,
    secret: str | None = None,
) -> requests.Response:
    form = {"repository": "local", "secret": secret or server.secret("local", "read")}
    if csrf_field is not None:
        form["csrf"] = csrf_field
    cookie = {"Cookie": f"{CSRF_COOKIE}={csrf_cookie}"} if csrf_cookie is not None else {}
    return requests.post(
        f"{server.url}/login/",
        data=form,
        headers={**(headers or {}), **cookie},
        allow_redirects=False,
        timeout=10,
    )


def log_in(server: RunningServer, headers: dict[str, str]) -> requests.Response:
    token, cookie, _ = login_form(server, headers)
    response = post_login(server, csrf_field=token, csrf_cookie=cookie, headers=headers)
    assert response.status_code == 303, response.text
    assert response.headers["Location"] == "/"
    return response


def test_cookies_over_plain_http_are_httponly_samesite_and_not_secure(
    server: RunningServer,
) -> None:
    _, _, csrf_attributes = login_form(server, {})
    assert {"httponly", "samesite=strict", "path=/login"} <= csrf_attributes
    assert "secure" not in csrf_attributes
    response = log_in(server, {})
    value, attributes = set_cookies(response)[SESSION_COOKIE]
    assert {"httponly", "samesite=lax", "path=/"} <= attributes, attributes
    assert "secure" not in attributes, attributes
    assert any(attribute.startswith("max-age=") for attribute in attributes)
    # The cookie opens the repository for reading.
    page = requests.get(
        server.simple_url, headers={"Cookie": f"{SESSION_COOKIE}={value}"}, timeout=10
    )
    assert page.status_code == 200


def test_cookies_are_secure_when_a_trusted_proxy_says_https(trusted: RunningServer) -> None:
    https = {"X-Forwarded-Proto": "https"}
    _, _, csrf_attributes = login_form(trusted, https)
    assert "secure" in csrf_attributes, csrf_attributes
    _, attributes = set_cookies(log_in(trusted, https))[SESSION_COOKIE]
    assert {"secure", "httponly", "samesite=lax"} <= attributes, attributes


def test_x_forwarded_proto_from_an_unnamed_proxy_is_ignored(server: RunningServer) -> None:
    https = {"X-Forwarded-Proto": "https"}
    _, _, csrf_attributes = login_form(server, https)
    assert "secure" not in csrf_attributes, csrf_attributes
    _, attributes = set_cookies(log_in(server, https))[SESSION_COOKIE]
    assert "secure" not in attributes and {"httponly", "samesite=lax"} <= attributes, attributes


@pytest.mark.parametrize(
    ("field", "cookie"),
    [
        (None, None),  # a cross-site form: no token at all
        (None, "cookie"),  # the cookie but not the form's token
        ("form", None),  # a token in the form but no cookie to match
        ("other", "cookie"),  # a token that is not the cookie's
        ("", ""),  # empty both
    ],
    ids=["none", "cookie-only", "field-only", "mismatch", "empty"],
)
def test_login_without_the_matching_csrf_token_is_refused(
    server: RunningServer, field: str | None, cookie: str | None
) -> None:
    token, cookie_value, _ = login_form(server, {})
    values = {"form": token, "cookie": cookie_value, "other": token[::-1], "": "", None: None}
    response = post_login(server, csrf_field=values[field], csrf_cookie=values[cookie])
    assert response.status_code == 403, response.text
    assert "The login form expired or came from another site" in response.text
    assert SESSION_COOKIE not in set_cookies(response)


def test_login_with_a_wrong_secret_sets_no_session(server: RunningServer) -> None:
    token, cookie, _ = login_form(server, {})
    response = post_login(server, csrf_field=token, csrf_cookie=cookie, secret="wrong")
    assert response.status_code == 401
    assert "Wrong package repository name or secret." in response.text
    assert SESSION_COOKIE not in set_cookies(response)


def test_a_tampered_session_cookie_opens_nothing(server: RunningServer) -> None:
    value, _ = set_cookies(log_in(server, {}))[SESSION_COOKIE]
    session_id, signature = value.split(".")
    other_id = f"{int(session_id, 16) ^ 1:032x}"
    for forged in [f"{other_id}.{signature}", f"{session_id}.{signature[::-1]}", session_id, "x.y"]:
        response = requests.get(
            server.simple_url, headers={"Cookie": f"{SESSION_COOKIE}={forged}"}, timeout=10
        )
        assert response.status_code == 401, forged


# --- /initialize/ -----------------------------------------------------------------------------


def team_config() -> tuple[str, str]:
    config = (
        '[team]\ntype = "file_system"\nread_secret = "team-read"\nwrite_secret = "team-write"\n'
    )
    return config, '[team]\ntype = "file_system"\nraw = "team-write"\n'


def initialize(server: RunningServer, headers: dict[str, str] | None = None) -> requests.Response:
    config, admin = team_config()
    return requests.post(
        f"{server.url}/initialize/",
        data={"config": config, "admin_secret": admin},
        headers=headers or {},
        timeout=10,
    )


@pytest.fixture
def pristine(tmp_path: Path) -> Iterator[RunningServer]:
    """The embedded default, never initialised, nothing uploaded."""
    running = start_server(tmp_path / "root", "--extra_index_url=", "--workers=2")
    yield running
    running.stop()


def test_anyone_may_initialize_a_pristine_embedded_server_but_only_once(
    pristine: RunningServer,
) -> None:
    response = initialize(pristine)
    assert response.status_code == 200, response.text
    assert response.text == "Initialized: team\n"
    assert requests.get(pristine.simple_url, headers=auth("team", "team-read"), timeout=10).ok
    again = initialize(pristine)
    assert again.status_code == 401, again.text
    assert "admin credential" in again.text


def test_after_an_upload_initialize_needs_the_admin_credential(pristine: RunningServer) -> None:
    data = wheel_bytes("demo-pkg", "1.0")
    assert upload(pristine, wheel_name("demo-pkg", "1.0"), data, name="demo-pkg", version="1.0").ok
    assert initialize(pristine).status_code == 401
    assert initialize(pristine, read_auth(pristine)).status_code == 401
    assert initialize(pristine, auth("local", "guess")).status_code == 401
    # The embedded default's admin secret is its write secret.
    response = initialize(pristine, auth("local", pristine.secret("local", "write")))
    assert response.status_code == 200, response.text


def test_a_server_started_with_a_config_refuses_anonymous_initialize(server: RunningServer) -> None:
    response = initialize(server)
    assert response.status_code == 401, response.text
    assert requests.get(server.simple_url, headers=read_auth(server), timeout=10).ok
