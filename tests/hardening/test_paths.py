"""Paths against a real server (3 workers, repositories ``alpha`` and ``beta``): traversal,
encodings, absolute paths and mismatched project/file pairs never reach a file outside the
repository's index, and one repository's credentials never reach another's files.

Canary files sit in ROOT, beside the storage folder, inside it (unlisted) and outside ROOT;
no answer may ever contain one.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
import requests

from tests.hardening.support import (
    JSON_V1,
    RawResponse,
    ServerSpec,
    auth,
    fs_table,
    raw_get,
    read_auth,
    sha256_hex,
    upload,
    wheel_bytes,
    wheel_name,
)
from tests.server import RunningServer, start_server

CANARY = f"CANARY-{secrets.token_hex(8)}"
DEMO_WHEEL = wheel_name("demo-pkg", "1.0")
DEMO_BYTES = wheel_bytes("demo-pkg", "1.0")


@dataclass
class Site:
    server: RunningServer
    canaries: list[Path]

    @property
    def root(self) -> Path:
        return self.server.root

    def alpha(self, kind: str = "read") -> dict[str, str]:
        return auth("alpha", self.server.secret("alpha", kind))

    def beta(self, kind: str = "read") -> dict[str, str]:
        return auth("beta", self.server.secret("beta", kind))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    spec = ServerSpec(
        tmp_path_factory.mktemp("paths") / "root",
        {"alpha": fs_table("alpha"), "beta": fs_table("beta")},
        ("--workers=3",),
    )
    server = spec.start()
    try:
        for repository, name in [
            ("alpha", "demo-pkg"),
            ("alpha", "other-pkg"),
            ("beta", "beta-only"),
        ]:
            response = upload(
                server,
                wheel_name(name, "1.0"),
                wheel_bytes(name, "1.0"),
                name=name,
                version="1.0",
                repository=repository,
            )
            assert response.status_code == 200, response.text
        storage = server.root / "cache" / "alpha" / "storage"
        canaries = [
            server.root / "canary.txt",
            server.root / "cache" / "alpha" / "canary.txt",  # beside the storage folder
            storage / "canary.txt",
            storage / "demo-pkg" / "canary.txt",
            storage / "demo-pkg" / wheel_name("demo-pkg", "9.9"),  # stored, never indexed
            server.root.parent / "canary.txt",  # outside ROOT
        ]
        for path in canaries:
            path.write_text(f"{CANARY} {path}\n")
        yield Site(server, canaries)
    finally:
        server.stop()


TRAVERSALS = [
    "/simple/../../etc/passwd",
    "/simple/../canary.txt",
    "/simple/../../canary.txt",
    "/simple/demo-pkg/../../canary.txt",
    "/simple/demo-pkg/../../../canary.txt",
    "/simple/demo-pkg/../../../../canary.txt",
    "/simple/..%2f..%2fetc%2fpasswd",
    "/simple/%2e%2e/%2e%2e/etc/passwd",
    "/simple/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "/simple/%2E%2E%2F%2E%2E%2Fcanary.txt",
    "/simple/demo-pkg/%2e%2e%2fcanary.txt",
    "/simple/demo-pkg/..%2f..%2fcanary.txt",
    "/simple/demo-pkg/%2e%2e%2f%2e%2e%2f%2e%2e%2fcanary.txt",
    "/simple/demo-pkg/%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fcanary.txt",
    "/simple/%252e%252e%252f%252e%252e%252fetc%252fpasswd",
    "/simple/demo-pkg/%252e%252e%252f%252e%252e%252fcanary.txt",
    "/simple/demo-pkg/%25252e%25252e%25252fcanary.txt",
    "/simple/demo-pkg/..%c0%afcanary.txt",
    "/simple/demo-pkg/..\\..\\canary.txt",
    "/simple/demo-pkg/..%5c..%5c..%5ccanary.txt",
    "/simple/demo-pkg/%5c..%5c..%5ccanary.txt",
    "/simple/demo-pkg/..",
    "/simple/demo-pkg/%2e%2e",
    "/simple/demo-pkg/.",
    "/simple/demo-pkg/canary.txt",
    "/simple/demo-pkg/%2fetc%2fpasswd",
    "/simple/demo-pkg//etc/passwd",
    "/simple//etc/passwd",
    "//etc/passwd",
    "/etc/passwd",
    "/canary.txt",
    "/simple/demo-pkg/%00",
    "/simple/demo-pkg/canary.txt%00.whl",
    "/simple/demo-pkg/demo_pkg-1.0-py3-none-any.whl%00",
    "/simple/demo-pkg/demo_pkg-1.0-py3-none-any.whl/..",
    "/simple/demo-pkg/demo_pkg-1.0-py3-none-any.whl/../../canary.txt",
    "/simple/%2e%2e/",
    "/simple/../",
    "/simple/..",
    "/pypi/../../etc/passwd/json",
    "/pypi/%2e%2e%2f%2e%2e%2fcanary.txt/json",
    "/pypi/demo-pkg/..%2f..%2fcanary.txt/json",
    "http://127.0.0.1/../../etc/passwd",
    "http://127.0.0.1/simple/demo-pkg/%2e%2e%2f%2e%2e%2fcanary.txt",
    "*",
]
ABSOLUTE = ["root", "beside-storage", "in-storage", "in-project", "unindexed-dist", "outside-root"]
MISMATCHED = [
    "/simple/other-pkg/demo_pkg-1.0-py3-none-any.whl",
    "/simple/other-pkg/demo_pkg-1.0-py3-none-any.whl.metadata",
    "/simple/beta-only/demo_pkg-1.0-py3-none-any.whl",
    "/simple/demo-pkg/other_pkg-1.0-py3-none-any.whl",
    "/simple/demo-pkg/demo_pkg-9.9-py3-none-any.whl",  # stored beside the others, not indexed
    "/simple/demo-pkg/demo_pkg-9.9-py3-none-any.whl.metadata",
    "/simple/demo-pkg/index.json",
    "/simple/demo-pkg/.index.lock",
    "/simple/demo-pkg/DEMO_PKG-1.0-py3-none-any.whl",
    "/simple/demo-pkg/beta_only-1.0-py3-none-any.whl",
    "/pypi/demo-pkg/9.9/json",
    "/pypi/beta-only/json",
]


def assert_never_leaks(site: Site, response: RawResponse) -> None:
    body = response.body
    assert CANARY.encode() not in body, f"a canary was served: {body[:200]!r}"
    assert b"root:x:0:" not in body, "/etc/passwd was served"
    assert (site.root / "session.key").read_bytes() not in body


def assert_refused(site: Site, target: str, headers: dict[str, str]) -> None:
    """404 or 400; a 301 only to another /simple/ page that is itself a 404 or 400."""
    response = raw_get(site.server.port, target, headers)
    assert response is not None, f"{target}: the server closed the connection without answering"
    assert_never_leaks(site, response)
    if response.status == 301:
        location = response.header("Location") or ""
        assert location.startswith("/simple/"), f"{target}: redirected to {location!r}"
        response = raw_get(site.server.port, location, headers)
        assert response is not None, f"{location}: no answer"
        assert_never_leaks(site, response)
    assert response.status in (400, 404), f"{target}: {response.status} {response.body[:200]!r}"
    assert "Traceback" not in response.text


@pytest.mark.parametrize("target", TRAVERSALS)
def test_traversal_and_encoded_paths_never_leave_the_index(site: Site, target: str) -> None:
    assert_refused(site, target, site.alpha())


@pytest.mark.parametrize("index", range(len(ABSOLUTE)), ids=ABSOLUTE)
def test_absolute_paths_to_files_outside_the_index_are_not_served(site: Site, index: int) -> None:
    path = site.canaries[index]
    for target in [
        f"/simple/demo-pkg/{quote(str(path), safe='')}",
        f"/simple/{quote(str(path), safe='')}/",
        f"/simple/demo-pkg{path}",
        f"/simple/demo-pkg/{path.name}",
        f"/simple/demo-pkg/..%2f{quote(path.name)}",
    ]:
        assert_refused(site, target, site.alpha())


@pytest.mark.parametrize("target", MISMATCHED)
def test_project_and_file_that_do_not_belong_together_are_404(site: Site, target: str) -> None:
    response = raw_get(site.server.port, target, site.alpha())
    assert response is not None
    assert_never_leaks(site, response)
    assert response.status == 404, (response.status, response.text)


def test_the_listed_file_and_its_metadata_are_served(site: Site) -> None:
    """The control: the same requests do reach the files the index lists."""
    response = raw_get(site.server.port, f"/simple/demo-pkg/{DEMO_WHEEL}", site.alpha())
    assert response is not None and response.status == 200
    assert sha256_hex(response.body) == sha256_hex(DEMO_BYTES)
    metadata = raw_get(site.server.port, f"/simple/demo-pkg/{DEMO_WHEEL}.metadata", site.alpha())
    assert metadata is not None and metadata.status == 200
    assert b"Name: demo-pkg" in metadata.body


@pytest.mark.parametrize(
    "target",
    [
        pytest.param("/simple/%E2%80%AE", id="bidi-override"),
        pytest.param("/simple/%ff%fe", id="invalid-utf8"),
        pytest.param("/simple/caf%C3%A9", id="latin-1-accent"),
        pytest.param("/simple/%0d%0aX-Injected:%20yes", id="crlf"),
        pytest.param("/simple/a%0d%0aX-Injected:%20yes/", id="crlf-slash"),
        pytest.param("/simple/%E2%80%AE/", id="bidi-override-with-slash"),
        pytest.param("/simple/Demo.Pkg%0d%0a", id="crlf-after-name"),
    ],
)
def test_odd_characters_in_the_project_segment_get_an_answer(site: Site, target: str) -> None:
    response = raw_get(site.server.port, target, site.alpha())
    assert response is not None, f"{target}: the server closed the connection without answering"
    assert response.status < 500, (response.status, response.text)
    assert not any(key.lower() == "x-injected" for key, _ in response.headers)
    assert_refused(site, target, site.alpha())


# --- One repository's credentials never reach another's files -------------------------------


def test_credentials_of_one_repository_never_reach_another(site: Site) -> None:
    url = site.server.url
    beta = site.beta()
    # beta's pages list only beta's projects.
    root = requests.get(f"{url}/simple/", headers={**beta, "Accept": JSON_V1}, timeout=10)
    assert [p["name"] for p in root.json()["projects"]] == ["beta-only"]
    for path in [
        "/simple/demo-pkg/",
        f"/simple/demo-pkg/{DEMO_WHEEL}",
        f"/simple/demo-pkg/{DEMO_WHEEL}.metadata",
        "/pypi/demo-pkg/json",
        "/pypi/demo-pkg/1.0/json",
    ]:
        for headers in (beta, site.beta("write")):
            response = requests.get(url + path, headers=headers, timeout=10, allow_redirects=False)
            assert response.status_code == 404, (path, response.status_code, response.text)
            assert DEMO_BYTES not in response.content
    # Mixing one repository's name with the other's secret opens nothing.
    for repository, secret in [
        ("alpha", site.server.secret("beta", "read")),
        ("alpha", site.server.secret("beta", "write")),
        ("beta", site.server.secret("alpha", "read")),
        ("beta", site.server.secret("alpha", "write")),
    ]:
        response = requests.get(
            f"{url}/simple/demo-pkg/{DEMO_WHEEL}", headers=auth(repository, secret), timeout=10
        )
        assert response.status_code == 401, (repository, response.status_code)
    # beta's write secret yanks nothing of alpha's and publishes into beta only.
    yank = requests.post(
        f"{url}/yank/",
        data={"project": "demo-pkg", "target": "1.0"},
        headers=site.beta("write"),
        timeout=10,
    )
    assert yank.status_code == 404, yank.text
    evil = wheel_bytes("demo-pkg", "1.0", payload=b"from beta")
    response = upload(
        site.server, DEMO_WHEEL, evil, name="demo-pkg", version="1.0", repository="beta"
    )
    assert response.status_code == 200, response.text
    alpha_file = requests.get(
        f"{url}/simple/demo-pkg/{DEMO_WHEEL}", headers=site.alpha(), timeout=10
    )
    assert alpha_file.content == DEMO_BYTES
    beta_file = requests.get(f"{url}/simple/demo-pkg/{DEMO_WHEEL}", headers=beta, timeout=10)
    assert beta_file.content == evil


def test_a_session_cookie_of_one_repository_never_reaches_another(site: Site) -> None:
    url = site.server.url
    with requests.Session() as browser:
        form = browser.get(f"{url}/login/", timeout=10)
        token = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert token is not None
        response = browser.post(
            f"{url}/login/",
            data={
                "csrf": token.group(1),
                "repository": "beta",
                "secret": site.server.secret("beta", "read"),
            },
            allow_redirects=False,
            timeout=10,
        )
        assert response.status_code == 303, response.text
        assert browser.get(f"{url}/simple/beta-only/", timeout=10).status_code == 200
        other_wheel = wheel_name("other-pkg", "1.0")
        for path in [
            "/simple/other-pkg/",
            f"/simple/other-pkg/{other_wheel}",
            "/pypi/other-pkg/json",
        ]:
            answer = browser.get(url + path, timeout=10, allow_redirects=False)
            assert answer.status_code == 404, (path, answer.status_code)
        # A session opens reading only: never an upload, not even into its own repository.
        upload_answer = browser.post(f"{url}/simple/", data=b"", timeout=10)
        assert upload_answer.status_code == 401, upload_answer.text


# --- The extra index redirect (the default deployment has one) --------------------------------

EXTRA_INDEX = "https://pypi.invalid/simple/"
URL_SAFE = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]*")


@pytest.fixture(scope="module")
def forwarding(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """The embedded default with an extra index (never contacted: redirects are not followed)."""
    root = tmp_path_factory.mktemp("extra-index") / "root"
    running = start_server(root, f"--extra_index_url={EXTRA_INDEX}", "--workers=2")
    yield running
    running.stop()


@pytest.mark.parametrize(
    "project",
    [
        pytest.param("requests", id="control"),
        pytest.param("%E2%80%AE", id="bidi-override"),
        pytest.param("a%0d%0ab", id="crlf"),
        pytest.param("a%20b", id="space"),
        pytest.param("%3Cscript%3E", id="angle-brackets"),
    ],
)
def test_redirects_to_the_extra_index_are_well_formed(
    forwarding: RunningServer, project: str
) -> None:
    response = raw_get(forwarding.port, f"/simple/{project}/", read_auth(forwarding))
    assert response is not None, "the server closed the connection without answering"
    assert response.status < 500, (response.status, response.text)
    if response.status in (301, 302, 303, 307, 308):
        location = response.header("Location") or ""
        assert location.startswith(EXTRA_INDEX), location
        assert URL_SAFE.fullmatch(location), f"not a valid URL: {location!r}"
    else:
        assert response.status in (400, 404), response.status
