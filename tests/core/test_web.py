"""The Falcon ASGI app in process: credentials, uploads, the simple pages, downloads, login."""

from __future__ import annotations

import hashlib
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode, urljoin

import pytest
from falcon.testing import Result, TestClient
from urllib3 import encode_multipart_formdata

from private_pypi_core.state import ServerSettings
from private_pypi_core.web.app import create_app
from tests.core.helpers import Site, basic_auth, upload_fields
from tests.dists import make_sdist, make_wheel

EXTRA_INDEX_URL = "https://pypi.example/simple/"
SESSION_COOKIE = "private_pypi_session"
CSRF_COOKIE = "private_pypi_login_csrf"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
def site(tmp_path: Path) -> Site:
    """The app with the extra index disabled: a missing project is a 404."""
    return Site.open(tmp_path / "root")


@pytest.fixture
def wheel(tmp_path: Path) -> Path:
    return make_wheel(tmp_path / "dist", "Demo_Pkg", "1.0", requires_python=">=3.8")


def config_file(directory: Path, **extra: int) -> Path:
    """A config with repository ``local`` (secrets ``read-secret``/``write-secret``)."""
    lines = ["[local]", 'type = "file_system"', 'read_secret = "read-secret"']
    lines += ['write_secret = "write-secret"', *(f"{k} = {v}" for k, v in extra.items())]
    path = directory / "config.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


# --- Credentials ---


def test_request_without_credentials_is_challenged_for_basic_auth(site: Site) -> None:
    result = site.client.simulate_get("/simple/")
    assert result.status_code == 401
    assert result.headers["WWW-Authenticate"].startswith("Basic ")
    assert "basic auth" in result.text


def test_wrong_secret_is_refused_without_echoing_it(site: Site) -> None:
    result = site.client.simulate_get("/simple/", headers=basic_auth("local", "not-the-secret"))
    assert result.status_code == 401
    assert result.headers["WWW-Authenticate"].startswith("Basic ")
    assert result.text == "Wrong package repository name or secret.\n"


def test_unknown_repository_is_refused_as_a_wrong_secret_is(site: Site) -> None:
    result = site.client.simulate_get("/simple/", headers=basic_auth("elsewhere", site.read_secret))
    assert result.status_code == 401
    assert result.text == "Wrong package repository name or secret.\n"


def test_read_secret_may_not_upload(site: Site, wheel: Path) -> None:
    result = site.upload(wheel, headers=site.read)
    assert result.status_code == 403
    assert "write secret" in result.text
    assert site.stored_files() == []


def test_read_secret_lists_nothing_on_a_new_repository(site: Site) -> None:
    result = site.client.simulate_get("/simple/", headers=site.read)
    assert result.status_code == 200
    assert "<a " not in result.text


# --- Upload and the simple pages ---


@pytest.mark.parametrize("path", ["/simple/", "/simple", "/"])
def test_upload_is_listed_with_its_sha256_and_escaped_requires_python(
    site: Site, wheel: Path, path: str
) -> None:
    result = site.upload(wheel, path=path, requires_python=">=3.8")
    assert result.status_code == 200, result.text
    assert wheel.name in result.text

    root_page = site.client.simulate_get("/simple/", headers=site.read)
    assert '<a href="demo-pkg/">demo-pkg</a>' in root_page.text

    page = site.client.simulate_get("/simple/demo-pkg/", headers=site.read)
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    sha256 = hashlib.sha256(wheel.read_bytes()).hexdigest()
    link = re.search(r"<a ([^>]*)>" + re.escape(wheel.name) + "</a>", page.text)
    assert link is not None, page.text
    assert f'href="{wheel.name}#sha256={sha256}"' in link.group(1)
    assert 'data-requires-python="&gt;=3.8"' in link.group(1)


def test_project_page_link_downloads_the_exact_wheel_as_zip(site: Site, wheel: Path) -> None:
    assert site.upload(wheel).status_code == 200
    page = site.client.simulate_get("/simple/demo-pkg/", headers=site.read)
    href = re.search(r'href="([^"#]+)#', page.text)
    assert href is not None
    result = site.client.simulate_get(
        urljoin("/simple/demo-pkg/", href.group(1)), headers=site.read
    )
    assert result.status_code == 200
    assert result.content == wheel.read_bytes()
    assert result.headers["Content-Type"] == "application/zip"
    assert result.headers["Content-Length"] == str(wheel.stat().st_size)


def test_sdist_downloads_without_a_content_encoding(site: Site, tmp_path: Path) -> None:
    sdist = make_sdist(tmp_path / "dist", "demo-pkg", "1.0")
    assert site.upload(sdist).status_code == 200
    result = site.client.simulate_get(f"/simple/demo-pkg/{sdist.name}", headers=site.read)
    assert result.status_code == 200
    assert result.content == sdist.read_bytes()  # still gzip-compressed: pip gets the archive
    assert "Content-Encoding" not in result.headers
    assert "gzip" not in result.headers["Content-Type"]


def test_file_is_not_served_under_another_projects_path(
    site: Site, wheel: Path, tmp_path: Path
) -> None:
    other = make_wheel(tmp_path / "dist", "other-pkg", "2.0")
    assert site.upload(wheel).status_code == 200
    assert site.upload(other).status_code == 200
    result = site.client.simulate_get(f"/simple/other-pkg/{wheel.name}", headers=site.read)
    assert result.status_code == 404
    assert wheel.name not in site.client.simulate_get("/simple/other-pkg/", headers=site.read).text


def test_missing_file_is_404(site: Site, wheel: Path) -> None:
    assert site.upload(wheel).status_code == 200
    result = site.client.simulate_get(
        "/simple/demo-pkg/demo_pkg-9.9-py3-none-any.whl", headers=site.read
    )
    assert result.status_code == 404


def test_file_listed_but_no_longer_stored_is_404(site: Site, wheel: Path) -> None:
    assert site.upload(wheel).status_code == 200
    (site.storage / "demo-pkg" / wheel.name).unlink()
    result = site.client.simulate_get(f"/simple/demo-pkg/{wheel.name}", headers=site.read)
    assert result.status_code == 404
    assert "no longer stored" in result.text


def test_wheel_with_a_local_version_downloads_through_its_quoted_link(
    site: Site, tmp_path: Path
) -> None:
    wheel = make_wheel(tmp_path / "dist", "demo-pkg", "1.0+local.1")
    assert site.upload(wheel).status_code == 200
    page = site.client.simulate_get("/simple/demo-pkg/", headers=site.read)
    href = re.search(r'href="([^"#]+)#', page.text)
    assert href is not None
    assert "+" not in href.group(1)  # quoted: a bare "+" may reach the server as a space
    result = site.client.simulate_get(f"/simple/demo-pkg/{href.group(1)}", headers=site.read)
    assert result.status_code == 200
    assert result.content == wheel.read_bytes()


@pytest.mark.parametrize("path", ["/simple/Demo_Pkg/", "/simple/demo.pkg/", "/simple/demo-pkg"])
def test_non_normalized_project_url_redirects_permanently_to_the_normalized_one(
    site: Site, wheel: Path, path: str
) -> None:
    assert site.upload(wheel).status_code == 200
    result = site.client.simulate_get(path, headers=site.read)
    assert result.status_code == 301
    assert result.headers["Location"] == "/simple/demo-pkg/"


def test_bare_simple_redirects_to_simple_slash(site: Site) -> None:
    result = site.client.simulate_get("/simple", headers=site.read)
    assert result.status_code == 301
    assert result.headers["Location"] == "/simple/"


@pytest.mark.parametrize("extra_index_url", [EXTRA_INDEX_URL, EXTRA_INDEX_URL.rstrip("/")])
def test_missing_project_is_sent_to_the_extra_index(tmp_path: Path, extra_index_url: str) -> None:
    site = Site.open(tmp_path / "root", extra_index_url=extra_index_url)
    result = site.client.simulate_get("/simple/requests/", headers=site.read)
    assert result.status_code == 303
    assert result.headers["Location"] == "https://pypi.example/simple/requests/"
    normalized_first = site.client.simulate_get("/simple/Zope.Interface/", headers=site.read)
    assert normalized_first.headers["Location"] == "/simple/zope-interface/"
    redirected = site.client.simulate_get("/simple/zope-interface/", headers=site.read)
    assert redirected.headers["Location"] == "https://pypi.example/simple/zope-interface/"


def test_missing_project_is_404_when_the_extra_index_is_disabled(site: Site) -> None:
    result = site.client.simulate_get("/simple/requests/", headers=site.read)
    assert result.status_code == 404
    assert "requests" in result.text
    assert "Location" not in result.headers


def test_missing_project_needs_credentials_before_redirecting(tmp_path: Path) -> None:
    site = Site.open(tmp_path / "root", extra_index_url=EXTRA_INDEX_URL)
    result = site.client.simulate_get("/simple/requests/")
    assert result.status_code == 401
    assert "Location" not in result.headers


# --- Upload conflicts and checks ---


def test_uploading_the_same_file_again_succeeds_and_changes_nothing(
    site: Site, wheel: Path
) -> None:
    assert site.upload(wheel).status_code == 200
    again = site.upload(wheel)
    assert again.status_code == 200
    assert "already stored" in again.text
    assert site.stored_files() == [wheel.name, f"{wheel.name}.metadata"]


def test_uploading_different_bytes_under_a_stored_name_is_a_conflict(
    site: Site, wheel: Path, tmp_path: Path
) -> None:
    assert site.upload(wheel).status_code == 200
    original = wheel.read_bytes()
    changed = make_wheel(tmp_path / "changed", "Demo_Pkg", "1.0", payload="changed")
    assert changed.name == wheel.name and changed.read_bytes() != original

    result = site.upload(changed)
    assert result.status_code == 409
    assert "File already exists" in result.text

    download = site.client.simulate_get(f"/simple/demo-pkg/{wheel.name}", headers=site.read)
    assert download.content == original
    page = site.client.simulate_get("/simple/demo-pkg/", headers=site.read)
    assert hashlib.sha256(original).hexdigest() in page.text


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": "another-pkg"}, "name='another-pkg'"),
        ({"version": "2.0"}, "version='2.0'"),
        ({"filetype": "sdist"}, "filetype='sdist'"),
        ({"sha256_digest": "0" * 64}, "sha256_digest"),
        ({"md5_digest": "0" * 32}, "md5_digest"),
        ({"blake2_256_digest": "0" * 64}, "blake2_256_digest"),
        ({"requires_python": ">=three"}, "requires_python"),
        ({":action": "remove_pkg"}, "remove_pkg"),
    ],
    ids=[
        "name",
        "version",
        "filetype",
        "sha256",
        "md5",
        "blake2_256",
        "requires_python",
        "action",
    ],
)
def test_upload_whose_form_contradicts_the_file_is_refused_and_not_stored(
    site: Site, wheel: Path, fields: dict[str, str | None], message: str
) -> None:
    result = site.upload(wheel, overrides=fields)
    assert result.status_code == 400
    assert result.headers["Content-Type"].startswith("text/plain")
    assert message in result.text
    assert site.stored_files() == []
    assert site.upload_temp_files() == []
    assert site.client.simulate_get("/simple/demo-pkg/", headers=site.read).status_code == 404


def test_upload_with_equivalent_name_and_version_spellings_is_accepted(
    site: Site, wheel: Path
) -> None:
    result = site.upload(wheel, name="demo.PKG", version="1.0.0")
    assert result.status_code == 200, result.text
    assert site.stored_files() == [wheel.name, f"{wheel.name}.metadata"]


def test_upload_with_correct_digests_of_every_kind_is_accepted(site: Site, wheel: Path) -> None:
    # upload_fields sends sha256, md5 and blake2_256 of the file: all must be checked as equal.
    assert site.upload(wheel).status_code == 200


@pytest.mark.parametrize(
    "filename",
    [
        "../demo_pkg-1.0-py3-none-any.whl",
        "sub\\demo_pkg-1.0-py3-none-any.whl",
        "demo_pkg-1.0.exe",
        "demo_pkg.whl",
        "demo_pkg-1.0-py3-none-any.whl.tar.bz2",
        "",
    ],
)
def test_upload_with_a_bad_filename_is_refused(site: Site, wheel: Path, filename: str) -> None:
    result = site.upload(wheel, filename=filename, name=None, version=None, filetype=None)
    assert result.status_code == 400
    assert "invalid filename" in result.text
    assert site.stored_files() == []


@pytest.mark.parametrize("filename", ["a b-1.0.tar.gz", "<b>-1.0.tar.gz", ".demo-1.0.tar.gz"])
def test_upload_whose_filename_names_an_invalid_project_is_refused(
    site: Site, tmp_path: Path, filename: str
) -> None:
    sdist = make_sdist(tmp_path / "dist", "demo", "1.0")
    result = site.upload(sdist, filename=filename, name=None, version=None, filetype=None)
    assert result.status_code == 400


def test_empty_file_is_refused(site: Site, wheel: Path) -> None:
    result = site.upload(wheel, content=b"")
    assert result.status_code == 400
    assert "empty" in result.text
    assert site.stored_files() == []


def test_upload_without_a_file_is_refused(site: Site) -> None:
    fields = {":action": "file_upload", "protocol_version": "1", "name": "demo-pkg"}
    body, content_type = encode_multipart_formdata(fields)
    result = site.client.simulate_post(
        "/simple/", body=body, headers={**site.write, "Content-Type": content_type}
    )
    assert result.status_code == 400
    assert "'content'" in result.text


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", b'{"name": "demo-pkg"}'),
        ("application/x-www-form-urlencoded", b"name=demo-pkg&version=1.0"),
        (None, b"just bytes"),
        ("multipart/form-data; boundary=xyz", b"not a multipart body"),
    ],
    ids=["json", "urlencoded", "no-content-type", "garbled-multipart"],
)
def test_non_multipart_upload_is_refused(site: Site, content_type: str | None, body: bytes) -> None:
    headers = dict(site.write)
    if content_type is not None:
        headers["Content-Type"] = content_type
    result = site.client.simulate_post("/simple/", body=body, headers=headers)
    assert result.status_code == 400
    assert "multipart/form-data" in result.text or "cannot be read" in result.text
    assert site.stored_files() == []


def test_file_larger_than_max_file_bytes_is_refused_with_413(tmp_path: Path, wheel: Path) -> None:
    size = wheel.stat().st_size
    config = config_file(tmp_path, max_file_bytes=size - 1)
    root = tmp_path / "root"
    client = TestClient(create_app(ServerSettings(root=root, config=str(config))))
    site = Site(client, root, read_secret="read-secret", write_secret="write-secret")

    result = site.upload(wheel)
    assert result.status_code == 413
    assert f"max_file_bytes = {size - 1}" in result.text
    assert site.stored_files() == []
    assert site.upload_temp_files() == []


def test_file_of_exactly_max_file_bytes_is_accepted(tmp_path: Path, wheel: Path) -> None:
    config = config_file(tmp_path, max_file_bytes=wheel.stat().st_size)
    root = tmp_path / "root"
    client = TestClient(create_app(ServerSettings(root=root, config=str(config))))
    site = Site(client, root, read_secret="read-secret", write_secret="write-secret")
    assert site.upload(wheel).status_code == 200
    assert site.stored_files() == [wheel.name, f"{wheel.name}.metadata"]


def test_get_on_the_upload_url_is_the_web_ui_home(site: Site) -> None:
    """``POST /`` uploads (above); a browser's ``GET /`` gets the UI (tests/ui)."""
    result = site.client.simulate_get("/", headers=site.write)
    assert result.status_code == 200
    assert result.headers["Content-Type"] == "text/html; charset=utf-8"


# --- Browser login ---


def login_token(site: Site) -> str:
    """The CSRF token of a freshly served login form (also set as its cookie)."""
    return site.client.simulate_get("/login/").cookies[CSRF_COOKIE].value


def login(site: Site, repository: str, secret: str) -> Result:
    token = login_token(site)
    body = urlencode({"repository": repository, "secret": secret, "csrf": token})
    headers = {**FORM, "Cookie": f"{CSRF_COOKIE}={token}"}
    return site.client.simulate_post("/login/", body=body, headers=headers)


def test_login_without_the_form_token_is_refused_as_cross_site(site: Site) -> None:
    body = urlencode({"repository": "local", "secret": site.read_secret})
    result = site.client.simulate_post("/login/", body=body, headers=FORM)
    assert result.status_code == 403
    assert SESSION_COOKIE not in result.cookies
    assert "another site" in result.text


def test_login_with_a_token_of_another_form_is_refused(site: Site) -> None:
    body = urlencode({"repository": "local", "secret": site.read_secret, "csrf": "forged"})
    headers = {**FORM, "Cookie": f"{CSRF_COOKIE}={login_token(site)}"}
    result = site.client.simulate_post("/login/", body=body, headers=headers)
    assert result.status_code == 403
    assert SESSION_COOKIE not in result.cookies


def test_login_form_token_cookie_is_strict_and_http_only(site: Site) -> None:
    cookie = site.client.simulate_get("/login/").cookies[CSRF_COOKIE]
    assert cookie.http_only
    assert cookie.same_site == "Strict"


def test_login_page_shows_a_form_to_anyone(site: Site) -> None:
    result = site.client.simulate_get("/login/")
    assert result.status_code == 200
    assert result.headers["Content-Type"].startswith("text/html")
    assert '<form method="post" action="/login/">' in result.text
    assert 'name="repository"' in result.text
    assert 'name="secret" type="password"' in result.text


def test_login_sets_an_http_only_same_site_cookie_that_alone_opens_the_index(
    site: Site, wheel: Path
) -> None:
    assert site.upload(wheel).status_code == 200
    result = login(site, "local", site.read_secret)
    assert result.status_code == 303
    assert result.headers["Location"] == "/"  # the web UI's home
    cookie = result.cookies[SESSION_COOKIE]
    assert cookie.http_only
    assert cookie.same_site == "Lax"
    assert cookie.path == "/"
    assert site.read_secret not in cookie.value

    cookies = {SESSION_COOKIE: cookie.value}
    listing = site.client.simulate_get("/simple/", cookies=cookies)
    assert listing.status_code == 200
    assert "demo-pkg" in listing.text
    download = site.client.simulate_get(f"/simple/demo-pkg/{wheel.name}", cookies=cookies)
    assert download.content == wheel.read_bytes()
    mtime = site.client.simulate_get("/index_mtime/", cookies=cookies)
    assert mtime.status_code == 200


def test_session_cookie_does_not_allow_uploads(site: Site, wheel: Path) -> None:
    cookie = login(site, "local", site.write_secret).cookies[SESSION_COOKIE].value
    body, content_type = encode_multipart_formdata(
        [*upload_fields(wheel).items(), ("content", (wheel.name, wheel.read_bytes()))]
    )
    result = site.client.simulate_post(
        "/simple/",
        body=body,
        headers={"Content-Type": content_type},
        cookies={SESSION_COOKIE: cookie},
    )
    assert result.status_code == 401
    assert site.stored_files() == []


@pytest.mark.parametrize("repository", ["local", "elsewhere"])
def test_login_with_a_wrong_secret_or_repository_is_refused_without_a_cookie(
    site: Site, repository: str
) -> None:
    result = login(site, repository, "wrong")
    assert result.status_code == 401
    assert set(result.cookies) == {CSRF_COOKIE}, "only a fresh form token, no session"
    assert "Wrong package repository name or secret." in result.text


def test_logout_page_shows_a_button_that_posts(site: Site) -> None:
    result = site.client.simulate_get("/logout/")
    assert result.status_code == 200
    assert '<form method="post" action="/logout/">' in result.text


def test_logout_ends_the_session_and_clears_the_cookie(site: Site) -> None:
    cookie = login(site, "local", site.read_secret).cookies[SESSION_COOKIE].value
    result = site.client.simulate_post("/logout/", cookies={SESSION_COOKIE: cookie})
    assert result.status_code == 303
    assert result.headers["Location"] == "/login/"
    cleared = result.cookies[SESSION_COOKIE]
    assert cleared.value == ""
    assert cleared.expires is not None and cleared.expires <= datetime.now(UTC)
    replayed = site.client.simulate_get("/simple/", cookies={SESSION_COOKIE: cookie})
    assert replayed.status_code == 401


def test_forged_session_cookie_is_refused(site: Site) -> None:
    forged = f"{'0' * 32}.{'f' * 64}"
    result = site.client.simulate_get("/simple/", cookies={SESSION_COOKIE: forged})
    assert result.status_code == 401


def test_tampered_session_cookie_is_refused(site: Site) -> None:
    session_id, signature = (
        login(site, "local", site.read_secret).cookies[SESSION_COOKIE].value.split(".")
    )
    other_id = ("1" if session_id[0] != "1" else "2") + session_id[1:]
    tampered = f"{other_id}.{signature}"
    result = site.client.simulate_get("/simple/", cookies={SESSION_COOKIE: tampered})
    assert result.status_code == 401


def test_session_cookie_of_another_server_is_refused(site: Site, tmp_path: Path) -> None:
    other = Site.open(tmp_path / "other-root", extra_index_url="")
    cookie = login(other, "local", other.read_secret).cookies[SESSION_COOKIE].value
    result = site.client.simulate_get("/simple/", cookies={SESSION_COOKIE: cookie})
    assert result.status_code == 401


@pytest.mark.parametrize("cookie", ["garbage", ".", "a.b.c", "x" * 5000])
def test_malformed_session_cookie_is_refused(site: Site, cookie: str) -> None:
    result = site.client.simulate_get("/simple/", cookies={SESSION_COOKIE: cookie})
    assert result.status_code == 401


def test_session_cookie_with_non_ascii_signature_is_refused(site: Site) -> None:
    result = site.client.simulate_get(
        "/simple/", headers={"Cookie": f"{SESSION_COOKIE}=abc.\u00e9t\u00e9"}
    )
    assert result.status_code == 401


def test_login_with_a_multipart_form_works(site: Site) -> None:
    token = login_token(site)
    body, content_type = encode_multipart_formdata(
        {"repository": "local", "secret": site.read_secret, "csrf": token}
    )
    headers = {"Content-Type": content_type, "Cookie": f"{CSRF_COOKIE}={token}"}
    result = site.client.simulate_post("/login/", body=body, headers=headers)
    assert result.status_code == 303
    assert SESSION_COOKIE in result.cookies


# --- /index_mtime/ ---


def test_index_mtime_needs_credentials(site: Site) -> None:
    assert site.client.simulate_get("/index_mtime/").status_code == 401


def test_index_mtime_is_the_epoch_time_of_the_last_index_write(site: Site, wheel: Path) -> None:
    before = int(time.time())
    assert site.upload(wheel).status_code == 200
    result = site.client.simulate_get("/index_mtime/", headers=site.read)
    assert result.status_code == 200
    assert result.text.isdigit()
    assert before - 1 <= int(result.text) <= time.time() + 1
    assert site.client.simulate_get("/index_mtime", headers=site.read).text == result.text


# --- attestations (PEP 740; checked and served: tests/protocol/test_provenance.py) ---


@pytest.mark.parametrize("attestations", ["not json", '{"an": "object"}'])
def test_attestations_that_are_not_a_json_list_are_refused(
    site: Site, wheel: Path, attestations: str
) -> None:
    result = site.upload(wheel, attestations=attestations)
    assert result.status_code == 400
    assert "attestations" in result.text
    assert site.stored_files() == []
