"""PEP 691 format choice on the simple pages: Accept with q-values, ``?format=``, 406, 400, Vary.

In process: what a client sees is the status, the Content-Type and a body of that format.
"""

from __future__ import annotations

import json

import pytest
from falcon.testing import Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.protocol.helpers import (
    HTML_LEGACY,
    HTML_V1,
    JSON_V1,
    OFFERED,
    PIP_ACCEPT,
    UV_ACCEPT,
    LocalIndex,
    media_type,
    vary_tokens,
)

ROOT = "/simple/"
PROJECT = "/simple/demo-pkg/"
PAGES = pytest.mark.parametrize("path", [ROOT, PROJECT])
FIREFOX_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
APPLICATION_TYPES = {JSON_V1, HTML_V1}


def served_format(result: Result) -> str:
    """The format of a 200 answer, checked against its body."""
    assert result.status_code == 200, f"{result.status}: {result.text}"
    chosen = media_type(result.headers.get("content-type"))
    if chosen == JSON_V1:
        assert json.loads(result.text)["meta"]["api-version"] == "1.4"
    else:
        assert chosen in (HTML_V1, HTML_LEGACY), chosen
        assert result.text.startswith("<!DOCTYPE html>")
        assert '<meta name="pypi:repository-version" content="1.4">' in result.text
    if chosen == HTML_LEGACY:
        assert "charset=utf-8" in result.headers["content-type"].lower()
    return chosen


@PAGES
def test_a_request_without_accept_gets_legacy_html(demo_index: LocalIndex, path: str) -> None:
    assert served_format(demo_index.get(path)) == HTML_LEGACY


@PAGES
@pytest.mark.parametrize("accept", ["*/*", "", FIREFOX_ACCEPT])
def test_a_bare_wildcard_an_empty_accept_and_a_browser_get_legacy_html(
    demo_index: LocalIndex, path: str, accept: str
) -> None:
    assert served_format(demo_index.get(path, accept)) == HTML_LEGACY


@PAGES
@pytest.mark.parametrize("accept", [PIP_ACCEPT, UV_ACCEPT], ids=["pip", "uv"])
def test_the_accept_headers_of_pip_and_uv_get_json(
    demo_index: LocalIndex, path: str, accept: str
) -> None:
    assert served_format(demo_index.get(path, accept)) == JSON_V1


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (f"{HTML_LEGACY}, {JSON_V1};q=0.5", {HTML_LEGACY}),
        (f"{JSON_V1};q=0.8, {HTML_V1};q=0.9", {HTML_V1}),
        (f"{HTML_LEGACY};q=0.011, {JSON_V1};q=0.01", {HTML_LEGACY}),
        (f"{JSON_V1};q=0.001, {HTML_LEGACY};q=0", {JSON_V1}),
        (f"{HTML_LEGACY};q=0.3, */*;q=0.5", APPLICATION_TYPES),
        (f"{HTML_V1};q=1.000, {JSON_V1};q=0.999", {HTML_V1}),
    ],
)
def test_the_highest_q_wins(demo_index: LocalIndex, accept: str, expected: set[str]) -> None:
    assert served_format(demo_index.get(PROJECT, accept)) in expected


@pytest.mark.parametrize(
    ("accept", "allowed"),
    [
        (f"{JSON_V1};q=0, */*", {HTML_V1, HTML_LEGACY}),
        (f"{HTML_LEGACY};q=0, */*;q=0.1", APPLICATION_TYPES),
        (f"{HTML_LEGACY};q=0.0, text/*, {HTML_V1};q=0.2", {HTML_V1}),
        ("application/*;q=0, */*", {HTML_LEGACY}),
        (f"{JSON_V1};q=0, application/*", {HTML_V1}),
    ],
)
def test_q_zero_excludes_a_format_whatever_else_matches(
    demo_index: LocalIndex, accept: str, allowed: set[str]
) -> None:
    assert served_format(demo_index.get(PROJECT, accept)) in allowed


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (f"{HTML_LEGACY}, {HTML_V1}, {JSON_V1}", JSON_V1),
        (f"{JSON_V1};q=0.4, {HTML_LEGACY};q=0.4", JSON_V1),
        (f"{HTML_LEGACY};q=0.5, {HTML_V1};q=0.5", HTML_V1),
        (f"{HTML_V1};q=0.5, {HTML_LEGACY};q=0.5", HTML_V1),
    ],
)
def test_a_tie_between_named_formats_goes_to_the_server_preference(
    demo_index: LocalIndex, accept: str, expected: str
) -> None:
    """JSON, then versioned HTML, then legacy HTML, whatever the order in the header."""
    assert served_format(demo_index.get(PROJECT, accept)) == expected


def test_a_named_format_beats_a_wildcard_of_the_same_q(demo_index: LocalIndex) -> None:
    assert served_format(demo_index.get(PROJECT, f"{HTML_LEGACY}, */*")) == HTML_LEGACY
    assert served_format(demo_index.get(PROJECT, f"{HTML_V1};q=0.7, */*;q=0.7")) == HTML_V1


def test_type_wildcards_choose_within_their_type(demo_index: LocalIndex) -> None:
    assert served_format(demo_index.get(PROJECT, "text/*")) == HTML_LEGACY
    assert served_format(demo_index.get(PROJECT, "application/*")) in APPLICATION_TYPES
    chosen = served_format(demo_index.get(PROJECT, "text/*;q=0.2, application/*;q=0.3"))
    assert chosen in APPLICATION_TYPES


@PAGES
@pytest.mark.parametrize(
    "accept",
    [
        "application/json",
        "image/png, application/xml;q=0.5",
        f"{JSON_V1};q=0, {HTML_V1};q=0, {HTML_LEGACY};q=0",
        "*/*;q=0",
    ],
)
def test_only_unoffered_formats_get_406_with_a_readable_message(
    demo_index: LocalIndex, path: str, accept: str
) -> None:
    result = demo_index.get(path, accept)
    assert result.status_code == 406, result.text
    assert media_type(result.headers.get("content-type")) == "text/plain"
    for offered in OFFERED:
        assert offered in result.text, result.text


@PAGES
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("json", JSON_V1),
        (JSON_V1, JSON_V1),
        ("html", HTML_V1),
        (HTML_V1, HTML_V1),
        (HTML_LEGACY, HTML_LEGACY),
    ],
)
@pytest.mark.parametrize("accept", [None, PIP_ACCEPT, HTML_LEGACY, "application/json"])
def test_the_format_parameter_overrides_accept(
    demo_index: LocalIndex, path: str, value: str, expected: str, accept: str | None
) -> None:
    assert served_format(demo_index.get(path, accept, format=value)) == expected


@PAGES
@pytest.mark.parametrize("value", ["xml", "application/json", "JSON-ish", "*/*"])
def test_an_unknown_format_value_gets_406_naming_it(
    demo_index: LocalIndex, path: str, value: str
) -> None:
    result = demo_index.get(path, PIP_ACCEPT, format=value)
    assert result.status_code == 406, result.text
    assert value in result.text
    assert JSON_V1 in result.text


@PAGES
@pytest.mark.parametrize(
    "accept", ["text/html;q=abc", f"{JSON_V1};q=2", "nonsense", f"{JSON_V1};q=-0.5"]
)
def test_a_malformed_accept_gets_400_quoting_it(
    demo_index: LocalIndex, path: str, accept: str
) -> None:
    result = demo_index.get(path, accept)
    assert result.status_code == 400, result.text
    assert "Accept" in result.text and accept in result.text


VARY_CASES = [
    ("/simple/", 200),
    ("/simple", 301),
    ("/simple/demo-pkg/", 200),
    ("/simple/Demo_Pkg/", 301),
    ("/simple/demo-pkg", 301),
    ("/simple/no-such-project/", 404),
]


@pytest.mark.parametrize(("path", "status"), VARY_CASES)
@pytest.mark.parametrize("accept", [None, JSON_V1, HTML_V1, HTML_LEGACY, PIP_ACCEPT])
def test_every_simple_response_varies_on_accept(
    demo_index: LocalIndex, path: str, status: int, accept: str | None
) -> None:
    """Pages, redirects and 404s alike: a cache must not serve JSON to an HTML client."""
    result = demo_index.get(path, accept)
    assert result.status_code == status, result.text
    assert "accept" in vary_tokens(result.headers.get("vary")), result.headers


@pytest.mark.parametrize("accept", ["application/json", "text/html;q=abc"])
def test_refusals_of_a_format_vary_on_accept_too(demo_index: LocalIndex, accept: str) -> None:
    result = demo_index.get(PROJECT, accept)
    assert result.status_code in (400, 406)
    assert "accept" in vary_tokens(result.headers.get("vary")), result.headers


def test_a_request_without_credentials_still_varies_on_accept(demo_index: LocalIndex) -> None:
    result = demo_index.client.simulate_get(PROJECT, headers={"Accept": JSON_V1})
    assert result.status_code == 401
    assert "accept" in vary_tokens(result.headers.get("vary"))


# --- Property: whatever the header, the answer honours its q-values ------------------------

RANGES = (JSON_V1, HTML_V1, HTML_LEGACY, "application/*", "text/*", "*/*", "application/json")


def _q_text(thousandths: int, short: bool) -> str:
    if thousandths == 1000:
        return "1" if short else "1.000"
    text = f"0.{thousandths:03d}"
    return (text.rstrip("0").rstrip(".") or "0") if short else text


@st.composite
def accept_headers(draw: st.DrawFn) -> tuple[str, dict[str, int]]:
    """An Accept header of distinct ranges, and each range's q in thousandths."""
    ranges = draw(st.lists(st.sampled_from(RANGES), min_size=1, max_size=7, unique=True))
    parts, qualities = [], {}
    for media_range in ranges:
        thousandths = draw(st.one_of(st.none(), st.integers(0, 1000)))
        space = draw(st.sampled_from(["", " "]))
        if thousandths is None:
            parts.append(media_range)
            qualities[media_range] = 1000
        else:
            q = _q_text(thousandths, draw(st.booleans()))
            parts.append(f"{media_range};{space}q={q}")
            qualities[media_range] = thousandths
    return draw(st.sampled_from([",", ", "])).join(parts), qualities


def _quality(offered: str, qualities: dict[str, int]) -> int:
    """RFC 9110: the q of the most specific range that matches ``offered``."""
    main_type = offered.split("/")[0]
    for media_range in (offered, f"{main_type}/*", "*/*"):
        if media_range in qualities:
            return qualities[media_range]
    return 0


@settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(header=accept_headers())
def test_any_accept_header_gets_a_format_of_the_highest_q_or_406_when_all_are_zero(
    demo_index: LocalIndex, header: tuple[str, dict[str, int]]
) -> None:
    accept, qualities = header
    q = {offered: _quality(offered, qualities) for offered in OFFERED}
    best = max(q.values())
    result = demo_index.get(PROJECT, accept)
    if best == 0:
        assert result.status_code == 406, (accept, result.status, result.text)
        return
    chosen = served_format(result)
    assert q[chosen] == best, (accept, chosen, q)
    assert q[chosen] > 0
    named_at_best = [offered for offered in OFFERED if offered in qualities and q[offered] == best]
    if named_at_best:
        assert chosen == named_at_best[0], (accept, chosen, q)


# --- Known gaps ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "expected"),
    [("TEXT/HTML", HTML_LEGACY), ("Application/Vnd.PyPI.Simple.V1+JSON", JSON_V1)],
)
def test_media_types_in_accept_are_case_insensitive(
    demo_index: LocalIndex, accept: str, expected: str
) -> None:
    assert served_format(demo_index.get(PROJECT, accept)) == expected


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("application/vnd.pypi.simple.latest+json", JSON_V1),
        ("application/vnd.pypi.simple.latest+html", HTML_V1),
    ],
)
def test_the_latest_meta_version_gets_the_v1_format_named_in_content_type(
    demo_index: LocalIndex, accept: str, expected: str
) -> None:
    assert served_format(demo_index.get(PROJECT, accept)) == expected


@pytest.mark.parametrize("accept", [f"{JSON_V1},", f"{JSON_V1}, , {HTML_LEGACY};q=0.01"])
def test_empty_elements_in_the_accept_list_are_ignored(demo_index: LocalIndex, accept: str) -> None:
    assert served_format(demo_index.get(PROJECT, accept)) == JSON_V1


@pytest.mark.parametrize("path", ["/simple", "/simple/Demo_Pkg/", "/simple/demo-pkg"])
def test_a_normalising_redirect_keeps_the_format_parameter(
    demo_index: LocalIndex, path: str
) -> None:
    result = demo_index.get(path, None, format="json")
    assert result.status_code == 301
    location = result.headers["location"]
    assert location.endswith("?format=json"), location
    assert served_format(demo_index.get(location.split("?")[0], None, format="json")) == JSON_V1
