"""The upstream emulator held to the Simple Repository API by real clients (pip, uv, an HTML
parser, requests), so that the pull-through cache's tests against it mean something."""

from __future__ import annotations

import hashlib
import http.client
import json
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest
import requests

from tests.dists import make_sdist, make_wheel
from tests.e2e.clients import client_env, pip_command, report, run
from tests.protocol.dists_extra import core_metadata, make_rich_wheel
from tests.proxy.upstream import HTML_TYPE, JSON_TYPE, Fault, StaticUpstream, negotiate

PIP_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, "
    "text/html; q=0.01"
)
JSON_ACCEPT = {"Accept": JSON_TYPE}
HTML_ACCEPT = {"Accept": "text/html"}


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[StaticUpstream]:
    with StaticUpstream(tmp_path / "upstream") as running:
        yield running


@pytest.fixture
def dists(tmp_path: Path) -> Path:
    return tmp_path / "dists"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def get(url: str, **kwargs: object) -> requests.Response:
    return requests.get(url, timeout=5, **kwargs)  # type: ignore[arg-type]


class _Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.anchors: dict[str, dict[str, str | None]] = {}
        self.meta: dict[str, str | None] = {}
        self._href: dict[str, str | None] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._href = dict(attrs)
        elif tag == "meta":
            attributes = dict(attrs)
            self.meta[attributes.get("name") or ""] = attributes.get("content")

    def handle_data(self, data: str) -> None:
        if self._href is not None:
            self.anchors[data] = self._href
            self._href = None


def parse_html(text: str) -> _Anchors:
    parser = _Anchors()
    parser.feed(text)
    return parser


# Real clients


@pytest.mark.parametrize("media", [JSON_TYPE, HTML_TYPE])
def test_pip_download_fetches_the_wheel_through_either_page_form(
    upstream: StaticUpstream, dists: Path, tmp_path: Path, media: str
) -> None:
    if media == HTML_TYPE:
        upstream.set_fault("html_only")
    upstream.add(make_wheel(dists, "demo-pkg", "0.9"))
    wheel = make_wheel(dists, "demo-pkg", "1.0")
    served = upstream.add(wheel)
    upstream.add(make_sdist(dists, "demo-pkg", "1.0"))
    target = tmp_path / "downloaded"
    result = run(
        pip_command(
            "download", "-vv", "--no-deps", "--disable-pip-version-check", "--no-cache-dir",
            "--index-url", upstream.simple_url, "demo-pkg==1.0", "-d", str(target),
        ),
        client_env(tmp_path),
    )  # fmt: skip
    assert result.returncode == 0, report(result)
    downloaded = target / wheel.name
    assert sha256(downloaded.read_bytes()) == sha256(wheel.read_bytes())
    assert f"/simple/demo-pkg/ as {media}" in result.stdout, report(result)
    # PEP 658: the metadata first, then the wheel; never the sdist.
    assert [path for _, path, _ in upstream.requests] == [
        "/simple/demo-pkg/",
        served.url_path + ".metadata",
        served.url_path,
    ]


@pytest.mark.parametrize("html_only", [False, True])
def test_uv_installs_a_project_and_its_dependency(
    upstream: StaticUpstream, dists: Path, tmp_path: Path, html_only: bool
) -> None:
    if html_only:
        upstream.set_fault("html_only")
    app = core_metadata("app-pkg", "2.0", requires_dist=["dep-pkg>=1"])
    upstream.add(make_rich_wheel(dists, "app-pkg", "2.0", app))
    upstream.add(make_rich_wheel(dists, "dep-pkg", "0.5"))
    upstream.add(make_rich_wheel(dists, "dep-pkg", "1.1"))
    env = client_env(tmp_path)
    venv = tmp_path / "venv"
    uv = [sys.executable, "-m", "uv"]
    created = run([*uv, "venv", "--python", sys.executable, str(venv)], env)
    assert created.returncode == 0, report(created)
    python = str(venv / "bin" / "python")
    install = [*uv, "pip", "install", "--no-cache", "--index-url", upstream.simple_url]
    installed = run([*install, "--python", python, "app-pkg"], env)
    assert installed.returncode == 0, report(installed)
    imported = run([python, "-c", "import app_pkg, dep_pkg; print(dep_pkg.VERSION)"], env)
    assert imported.stdout.strip() == "1.1", report(imported)
    assert upstream.count("/simple/app-pkg/") >= 1
    assert upstream.count("/simple/dep-pkg/") >= 1
    assert upstream.count("dep_pkg-1.1-py3-none-any.whl.metadata") == 1, upstream.requests


# The pages


def test_html_page_links_files_with_hashes_and_escaped_attributes(
    upstream: StaticUpstream, dists: Path
) -> None:
    wheel = upstream.add(make_wheel(dists, "demo-pkg", "1.0"), requires_python=">=3.8")
    sdist = upstream.add(make_sdist(dists, "demo-pkg", "1.0"), yanked='broken "build" <sdist>')
    response = get(upstream.simple_url + "demo-pkg/", headers=HTML_ACCEPT)
    assert response.headers["Content-Type"] == HTML_TYPE
    assert response.headers["Vary"] == "Accept"
    assert 'data-requires-python="&gt;=3.8"' in response.text
    page = parse_html(response.text)
    assert page.meta["pypi:repository-version"] == "1.1"
    assert set(page.anchors) == {wheel.filename, sdist.filename}
    link = page.anchors[wheel.filename]
    assert link["href"] == f"{upstream.url}{wheel.url_path}#sha256={wheel.sha256}"
    assert link["data-requires-python"] == ">=3.8"
    assert link["data-core-metadata"] == link["data-dist-info-metadata"]
    assert link["data-core-metadata"] == f"sha256={wheel.metadata_sha256}"
    assert "data-yanked" not in link
    sdist_link = page.anchors[sdist.filename]
    assert sdist_link["data-yanked"] == 'broken "build" <sdist>'
    assert "data-core-metadata" not in sdist_link
    for anchor in page.anchors.values():
        url, _, fragment = (anchor["href"] or "").partition("#")
        assert fragment == f"sha256={sha256(get(url).content)}"


def test_json_page_holds_the_pep_691_and_700_keys(upstream: StaticUpstream, dists: Path) -> None:
    when = datetime(2024, 5, 1, 12, 30, 15, 123456, tzinfo=UTC)
    wheel = upstream.add(make_wheel(dists, "demo-pkg", "1.0"), upload_time=when)
    upstream.add(make_wheel(dists, "demo-pkg", "0.9"), upload_time=None, yanked="")
    upstream.add(make_sdist(dists, "demo-pkg", "1.0"), yanked="bad", metadata=True)
    response = get(upstream.simple_url + "demo-pkg/", headers=JSON_ACCEPT)
    assert response.headers["Content-Type"] == JSON_TYPE
    assert response.headers["Vary"] == "Accept"
    page = response.json()
    assert page["meta"] == {"api-version": "1.1"}
    assert page["name"] == "demo-pkg"
    assert page["versions"] == ["0.9", "1.0"]
    files = {entry["filename"]: entry for entry in page["files"]}
    entry = files[wheel.filename]
    assert entry["url"] == upstream.url + wheel.url_path
    assert entry["hashes"] == {"sha256": wheel.sha256}
    assert entry["size"] == wheel.size == len(get(entry["url"]).content)
    assert entry["upload-time"] == "2024-05-01T12:30:15.123456Z"
    assert entry["requires-python"] is None
    assert entry["yanked"] is False
    assert entry["core-metadata"] == {"sha256": wheel.metadata_sha256}
    assert "upload-time" not in files["demo_pkg-0.9-py3-none-any.whl"]
    assert files["demo_pkg-0.9-py3-none-any.whl"]["yanked"] is True
    assert files["demo_pkg-1.0.tar.gz"]["yanked"] == "bad"
    assert files["demo_pkg-1.0.tar.gz"]["core-metadata"] is False


def test_core_metadata_is_the_wheels_metadata_with_the_advertised_hash(
    upstream: StaticUpstream, dists: Path
) -> None:
    wheel = upstream.add(make_wheel(dists, "demo-pkg", "1.0", requires_python=">=3.8"))
    bare = upstream.add(make_wheel(dists, "bare-pkg", "1.0"), metadata=False)
    served = get(upstream.url + wheel.url_path + ".metadata")
    assert served.status_code == 200
    assert sha256(served.content) == wheel.metadata_sha256
    assert b"Requires-Python: >=3.8" in served.content
    assert get(upstream.url + bare.url_path + ".metadata").status_code == 404
    entry = get(upstream.simple_url + "bare-pkg/", headers=JSON_ACCEPT).json()["files"][0]
    assert entry["core-metadata"] is False


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (PIP_ACCEPT, JSON_TYPE),
        ("application/vnd.pypi.simple.latest+json", JSON_TYPE),
        ("text/html", HTML_TYPE),
        ("*/*", HTML_TYPE),
        (None, HTML_TYPE),
        (f"{JSON_TYPE}; q=0.2, text/html", HTML_TYPE),
        (f"{JSON_TYPE}; q=0", HTML_TYPE),
    ],
)
def test_content_negotiation_prefers_the_highest_quality(accept: str | None, expected: str) -> None:
    assert negotiate(accept) == expected


def test_project_list_in_both_forms(upstream: StaticUpstream, dists: Path) -> None:
    upstream.add(make_wheel(dists, "Demo_Pkg", "1.0"))
    upstream.add(make_sdist(dists, "other.pkg", "1.0"))
    listed = get(upstream.simple_url, headers=JSON_ACCEPT).json()
    assert listed["projects"] == [{"name": "demo-pkg"}, {"name": "other-pkg"}]
    anchors = parse_html(get(upstream.simple_url).text).anchors
    assert anchors["demo-pkg"]["href"] == upstream.simple_url + "demo-pkg/"


def test_other_spellings_redirect_and_unknown_projects_are_404(
    upstream: StaticUpstream, dists: Path
) -> None:
    upstream.add(make_wheel(dists, "demo-pkg", "1.0"))
    moved = get(upstream.simple_url + "Demo_Pkg/", allow_redirects=False)
    assert moved.status_code == 301
    assert moved.headers["Location"] == upstream.simple_url + "demo-pkg/"
    assert get(upstream.simple_url + "demo.pkg").url == upstream.simple_url + "demo-pkg/"
    assert get(upstream.simple_url + "missing/").status_code == 404
    assert get(upstream.url + "/files/00/00/demo_pkg-1.0-py3-none-any.whl").status_code == 404


def test_matching_if_none_match_gives_an_empty_304_and_is_counted(
    upstream: StaticUpstream, dists: Path
) -> None:
    upstream.add(make_wheel(dists, "demo-pkg", "1.0"))
    page = upstream.simple_url + "demo-pkg/"
    first = get(page, headers=JSON_ACCEPT)
    etag = first.headers["ETag"]
    assert etag == f'"{sha256(first.content)}"'
    assert first.headers["Last-Modified"].endswith(" GMT")
    assert get(page, headers=HTML_ACCEPT).headers["ETag"] != etag
    again = get(page, headers={**JSON_ACCEPT, "If-None-Match": f'W/"other", {etag}'})
    assert (again.status_code, again.content, again.headers["ETag"]) == (304, b"", etag)
    assert get(page, headers={**JSON_ACCEPT, "If-None-Match": '"other"'}).status_code == 200
    upstream.add(make_wheel(dists, "demo-pkg", "1.1"))
    changed = get(page, headers={**JSON_ACCEPT, "If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["ETag"] != etag
    assert upstream.not_modified_count == 1


def test_removed_files_leave_the_pages(upstream: StaticUpstream, dists: Path) -> None:
    old = upstream.add(make_wheel(dists, "demo-pkg", "0.9"))
    new = upstream.add(make_wheel(dists, "demo-pkg", "1.0"))
    upstream.remove(old.filename)
    assert get(upstream.simple_url + "demo-pkg/", headers=JSON_ACCEPT).json()["versions"] == ["1.0"]
    assert get(upstream.url + old.url_path).status_code == 404
    upstream.remove(new.filename)
    assert get(upstream.simple_url + "demo-pkg/").status_code == 404


def test_request_log_counts_every_answer(upstream: StaticUpstream, dists: Path) -> None:
    wheel = upstream.add(make_wheel(dists, "demo-pkg", "1.0"))
    get(upstream.simple_url + "demo-pkg/")
    requests.head(upstream.url + wheel.url_path, timeout=5)
    get(upstream.simple_url + "nothing/")
    assert upstream.requests == [
        ("GET", "/simple/demo-pkg/", 200),
        ("HEAD", wheel.url_path, 200),
        ("GET", "/simple/nothing/", 404),
    ]
    assert upstream.count("/simple/") == 2
    upstream.clear_requests()
    assert upstream.requests == []


# Faults


@pytest.fixture
def wheel_url(upstream: StaticUpstream, dists: Path) -> str:
    return (
        upstream.url
        + upstream.add(make_wheel(dists, "demo-pkg", "1.0", payload="x" * 5000)).url_path
    )


def test_slow_fault_makes_clients_time_out(upstream: StaticUpstream, wheel_url: str) -> None:
    upstream.set_fault("slow", seconds=2)
    with pytest.raises(requests.Timeout):
        requests.get(wheel_url, timeout=0.5)


def test_slow_body_fault_stalls_after_the_headers(upstream: StaticUpstream, wheel_url: str) -> None:
    upstream.fault = Fault("slow_body", seconds=2)
    response = requests.get(wheel_url, timeout=0.5, stream=True)
    assert response.status_code == 200
    with pytest.raises(requests.ConnectionError, match="timed out"):
        response.content  # noqa: B018


def test_error_fault_answers_500(upstream: StaticUpstream, wheel_url: str) -> None:
    upstream.set_fault("error")
    response = get(wheel_url)
    assert response.status_code == 500
    assert response.text
    assert upstream.requests[-1][2] == 500


def test_truncate_fault_sends_half_the_promised_body(
    upstream: StaticUpstream, wheel_url: str
) -> None:
    upstream.set_fault("truncate", match="/files/")
    page = get(upstream.simple_url + "demo-pkg/", headers=JSON_ACCEPT)
    assert page.json()["name"] == "demo-pkg"  # not matched: whole
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        get(wheel_url)
    connection = http.client.HTTPConnection("127.0.0.1", upstream.port, timeout=5)
    connection.request("GET", wheel_url.removeprefix(upstream.url))
    response = connection.getresponse()
    length = int(response.headers["Content-Length"])
    with pytest.raises(http.client.IncompleteRead) as short:
        response.read()
    assert len(short.value.partial) == length // 2


def test_wrong_hash_fault_serves_other_bytes_of_the_same_length(
    upstream: StaticUpstream, wheel_url: str
) -> None:
    true = get(wheel_url).content
    upstream.set_fault("wrong_hash")
    served = get(wheel_url).content
    assert len(served) == len(true)
    assert sha256(served) != sha256(true)
    page = get(upstream.simple_url + "demo-pkg/", headers=JSON_ACCEPT).json()
    assert page["files"][0]["hashes"]["sha256"] == sha256(true)


def test_html_only_fault_ignores_the_json_accept(upstream: StaticUpstream, wheel_url: str) -> None:
    upstream.set_fault("html_only")
    response = get(upstream.simple_url + "demo-pkg/", headers={"Accept": PIP_ACCEPT})
    assert response.headers["Content-Type"] == HTML_TYPE
    assert "demo_pkg-1.0-py3-none-any.whl" in parse_html(response.text).anchors


def test_not_found_fault_applies_only_to_matching_paths(
    upstream: StaticUpstream, wheel_url: str
) -> None:
    upstream.set_fault("not_found", match="/files/")
    assert get(wheel_url).status_code == 404
    assert get(upstream.simple_url + "demo-pkg/").status_code == 200
    upstream.clear_fault()
    assert get(wheel_url).status_code == 200


def test_unknown_fault_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown fault"):
        Fault("flaky")  # type: ignore[arg-type]


def test_stop_refuses_connections_and_start_serves_on_the_same_port(
    upstream: StaticUpstream, wheel_url: str
) -> None:
    port = upstream.port
    session = requests.Session()
    assert session.get(wheel_url, timeout=5).status_code == 200
    upstream.stop()
    with pytest.raises(requests.ConnectionError):
        session.get(wheel_url, timeout=5)
    with pytest.raises(requests.ConnectionError):
        get(wheel_url)
    upstream.start()
    assert upstream.port == port
    assert get(wheel_url).status_code == 200
    assert json.loads(get(upstream.simple_url, headers=JSON_ACCEPT).content)["projects"]


def test_stop_cuts_an_answer_in_flight(upstream: StaticUpstream, wheel_url: str) -> None:
    upstream.set_fault("slow_body", seconds=30)
    response = requests.get(wheel_url, timeout=5, stream=True)
    started = time.monotonic()
    upstream.stop()
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        response.content  # noqa: B018
    assert time.monotonic() - started < 2
