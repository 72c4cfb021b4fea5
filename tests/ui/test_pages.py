"""The web UI's pages, in process: who sees what, search, sort and pages, a project's versions,
files, statuses and install commands, and its description rendered and sanitised."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta
from html import unescape
from html.parser import HTMLParser
from pathlib import Path

import pytest
from markupsafe import Markup

from private_pypi_core.index import IndexEntry, PackageIndex
from private_pypi_core.web.ui.description import Description, DescriptionCache
from private_pypi_core.web.ui.views import PAGE_SIZE, list_projects
from tests.core.helpers import basic_auth
from tests.ui.support import (
    MALICIOUS_MARKDOWN,
    MALICIOUS_RST,
    MARKDOWN_README,
    PLAIN_README,
    PUBLIC_URL,
    RST_README,
    UiSite,
    two_repositories,
    wheel,
)

WIDGET_1_1 = wheel(
    "widget_toolkit",
    "1.1",
    description=MARKDOWN_README,
    content_type="text/markdown",
    summary="Widgets for everyone",
    requires_python=">=3.9",
    project_urls={"Source": "https://example.com/src", "Evil": "javascript:alert(1)"},
)


@pytest.fixture
def site(tmp_path: Path) -> UiSite:
    """``local`` holds widget-toolkit (two versions, Markdown) and gadget-lib (rST); ``other``
    holds hidden-thing."""
    site = UiSite.open(tmp_path / "root", two_repositories(), public_url=PUBLIC_URL)
    site.upload(*wheel("widget_toolkit", "1.0", description="old", content_type="text/plain"))
    site.upload(*WIDGET_1_1)
    site.upload(*wheel("gadget_lib", "2.0", description=RST_README, content_type="text/x-rst"))
    site.upload(*wheel("hidden_thing", "1.0", summary="not for local"), repository="other")
    return site


def main_of(page: str) -> str:
    """The page's ``<main>``: what it shows, without the header."""
    match = re.search(r"<main\b.*?</main>", page, re.DOTALL)
    assert match, page
    return match.group(0)


def project_names(page: str) -> list[str]:
    return re.findall(r'<a class="name" href="/project/([^/"]+)/">', page)


# --- Who sees what ------------------------------------------------------------------------


def test_home_without_a_credential_shows_the_way_to_log_in_and_no_project(site: UiSite) -> None:
    result = site.client.simulate_get("/")
    assert result.status_code == 200
    assert result.headers["Content-Type"] == "text/html; charset=utf-8"
    assert 'href="/login/"' in result.text
    for leak in ("widget", "gadget", "hidden", "local", "other"):
        assert leak not in result.text


def test_a_project_page_without_a_credential_sends_the_browser_to_log_in(site: UiSite) -> None:
    result = site.client.simulate_get("/project/widget-toolkit/")
    assert result.status_code == 303
    assert result.headers["Location"] == "/login/?next=%2Fproject%2Fwidget-toolkit%2F"
    assert "widget" not in result.text


def test_a_login_sent_from_a_project_page_lands_back_on_it(site: UiSite) -> None:
    form = site.client.simulate_get("/login/", params={"next": "/project/widget-toolkit/"})
    assert '<input type="hidden" name="next" value="/project/widget-toolkit/">' in form.text
    result = site.log_in(next_page="/project/widget-toolkit/")
    assert result.status_code == 303
    assert result.headers["Location"] == "/project/widget-toolkit/"


@pytest.mark.parametrize(
    "elsewhere",
    ["//evil.example/", "https://evil.example/", "/\\evil.example", "/\t/evil.example", "x"],
)
def test_a_login_never_lands_on_another_site(site: UiSite, elsewhere: str) -> None:
    result = site.log_in(next_page=elsewhere)
    assert result.status_code == 303
    assert result.headers["Location"] == "/"


def test_a_wrong_credential_is_refused_as_the_index_refuses_it(site: UiSite) -> None:
    for path in ("/", "/project/widget-toolkit/"):
        result = site.client.simulate_get(path, headers=basic_auth("local", "wrong"))
        assert result.status_code == 401
        assert "widget" not in result.text


def test_logging_in_lands_on_the_home_page_with_the_projects_and_a_logout_button(
    site: UiSite,
) -> None:
    login = site.log_in()
    assert login.headers["Location"] == "/"
    home = site.client.simulate_get("/", cookies=site.session())
    assert home.status_code == 200
    assert home.headers["Cache-Control"] == "no-store"
    assert project_names(home.text) == ["gadget-lib", "widget-toolkit"]
    assert "Repository <strong>local</strong>" in home.text
    assert '<form class="logout" method="post" action="/logout/">' in home.text


def test_every_page_of_a_session_has_the_logout_button(site: UiSite) -> None:
    cookies = site.session()
    for path in ("/", "/?q=zzz", "/project/widget-toolkit/", "/project/nothing-here/"):
        page = site.client.simulate_get(path, cookies=cookies)
        assert 'action="/logout/"' in page.text, path


def test_basic_auth_opens_the_pages_as_it_opens_the_index(site: UiSite) -> None:
    home = site.client.simulate_get("/", headers=site.auth())
    assert project_names(home.text) == ["gadget-lib", "widget-toolkit"]
    assert 'action="/logout/"' not in home.text, "basic auth is no session to end"
    project = site.client.simulate_get("/project/widget-toolkit/", headers=site.auth())
    assert project.status_code == 200


def test_a_read_secret_of_one_repository_never_shows_another(site: UiSite) -> None:
    session = site.session("local")
    for headers, cookies in ((site.auth("local"), None), (None, session)):
        home = site.client.simulate_get("/", headers=headers, cookies=cookies)
        assert "hidden" not in home.text
        search = site.client.simulate_get(
            "/", params={"q": "hidden"}, headers=headers, cookies=cookies
        )
        assert project_names(search.text) == []
        page = site.client.simulate_get("/project/hidden-thing/", headers=headers, cookies=cookies)
        assert page.status_code == 404
        assert "not for local" not in page.text
    other = site.client.simulate_get("/", headers=site.auth("other"))
    assert project_names(other.text) == ["hidden-thing"]


def test_an_anonymous_read_repository_shows_its_projects_and_a_login_link(
    tmp_path: Path,
) -> None:
    tables = two_repositories(anonymous_read=True)
    site = UiSite.open(tmp_path / "root", tables)
    site.upload(*wheel("open_thing", "1.0"))
    home = site.client.simulate_get("/")
    assert project_names(home.text) == ["open-thing"]
    assert 'href="/login/"' in home.text


# --- The list of projects -----------------------------------------------------------------


def test_search_matches_any_spelling_of_part_of_a_name(site: UiSite) -> None:
    for query in ("widget", "Widget_Tool", "t.tool", "  TOOLKIT "):
        page = site.client.simulate_get("/", params={"q": query}, headers=site.auth())
        assert project_names(page.text) == ["widget-toolkit"], query
    assert f'value="{query.strip()}"' in page.text, "the search box keeps the query"
    nothing = site.client.simulate_get("/", params={"q": "nope"}, headers=site.auth())
    assert project_names(nothing.text) == []
    assert "No project matches “nope”." in nothing.text


def test_projects_sort_by_name_or_by_last_upload(site: UiSite) -> None:
    by_name = site.client.simulate_get("/", headers=site.auth())
    assert project_names(by_name.text) == ["gadget-lib", "widget-toolkit"]
    site.upload(*wheel("widget_toolkit", "1.2"))
    by_upload = site.client.simulate_get("/", params={"sort": "updated"}, headers=site.auth())
    assert project_names(by_upload.text) == ["widget-toolkit", "gadget-lib"]
    bad = site.client.simulate_get("/", params={"sort": "size"}, headers=site.auth())
    assert bad.status_code == 400


def entry(project: str, minutes: int) -> IndexEntry:
    return IndexEntry(
        filename=f"{project.replace('-', '_')}-1.0-py3-none-any.whl",
        project=project,
        version="1.0",
        sha256="0" * 64,
        size=1,
        upload_time=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=minutes),
    )


def test_projects_come_fifty_a_page_and_a_page_out_of_range_shows_the_last() -> None:
    names = [f"pkg-{number:03}" for number in range(PAGE_SIZE * 2 + 3)]
    index = PackageIndex.of(entry(n, i) for i, n in enumerate(names))
    first = list_projects(index, "", "name", 1)
    assert [row.name for row in first.rows] == names[:PAGE_SIZE]
    assert (first.pages, first.matches) == (3, len(names))
    last = list_projects(index, "", "name", 99)
    assert last.page == 3
    assert [row.name for row in last.rows] == names[-3:]
    newest = list_projects(index, "pkg-1", "updated", 1)
    assert [row.name for row in newest.rows][:2] == ["pkg-102", "pkg-101"]
    assert newest.url(2) == "/?q=pkg-1&sort=updated&page=2"


def test_the_pages_link_to_each_other_keeping_the_search(tmp_path: Path) -> None:
    site = UiSite.open(tmp_path / "root", two_repositories())
    for number in range(PAGE_SIZE + 1):
        site.upload(*wheel(f"pkg{number:02}", "1.0"))
    first = site.client.simulate_get("/", params={"q": "pkg"}, headers=site.auth())
    assert len(project_names(first.text)) == PAGE_SIZE
    assert '<a rel="next" href="/?q=pkg&amp;page=2">' in first.text
    second = site.client.simulate_get("/", params={"q": "pkg", "page": "2"}, headers=site.auth())
    assert project_names(second.text) == [f"pkg{PAGE_SIZE:02}"]
    assert '<a rel="prev" href="/?q=pkg">' in second.text
    assert "page 2 of 2" in second.text


# --- A project's page ---------------------------------------------------------------------


def test_a_project_page_lists_versions_newest_first_with_each_files_details(
    site: UiSite,
) -> None:
    page = main_of(site.client.simulate_get("/project/widget-toolkit/", headers=site.auth()).text)
    assert "<h1>widget-toolkit <span" in page and ">1.1</span></h1>" in page
    assert "Widgets for everyone" in page
    assert page.index('id="release-1.1"') < page.index('id="release-1.0"')
    filename, data = WIDGET_1_1
    assert f'href="/simple/widget-toolkit/{filename}"' in page
    assert hashlib.sha256(data).hexdigest() in page
    assert "<dd>&gt;=3.9</dd>" in page
    assert re.search(r"<dd>\d+(\.\d)? (Bytes|kB)</dd>", page)
    assert re.search(r'<time datetime="[^"]+">\d{4}-\d\d-\d\d \d\d:\d\d UTC</time>', page)
    assert '<a href="https://example.com/src" rel="nofollow noopener noreferrer">Source</a>' in page
    assert "javascript:" not in page


def test_a_non_normalised_project_url_redirects_to_the_normalised_one(site: UiSite) -> None:
    for path in ("/project/Widget_Toolkit/", "/project/widget-toolkit"):
        result = site.client.simulate_get(path, headers=site.auth())
        assert result.status_code == 301
        assert result.headers["Location"] == "/project/widget-toolkit/"


def test_a_yanked_release_is_marked_with_its_reason(site: UiSite) -> None:
    site.manage("/yank/", project="widget-toolkit", target="1.0", reason="broke <imports>")
    page = main_of(site.client.simulate_get("/project/widget-toolkit/", headers=site.auth()).text)
    release = page[page.index('id="release-1.0"') :]
    assert '<span class="badge yanked">yanked</span>' in release
    assert "Yanked: broke &lt;imports&gt;" in release
    assert "yanked" not in page[page.index('id="release-1.1"') : page.index('id="release-1.0"')]


def test_install_commands_name_the_project_and_the_server_but_never_a_secret(
    site: UiSite,
) -> None:
    page = site.client.simulate_get("/project/widget-toolkit/", headers=site.auth()).text
    found = re.findall(r'<pre class="command"[^>]*><code>(.*?)</code>', page, re.DOTALL)
    commands = [unescape(command) for command in found]
    assert commands == [
        'pip install --index-url "https://local:$READ_SECRET@pypi.example.com/simple/" '
        '"widget-toolkit==1.1"',
        'uv pip install --index-url "https://local:$READ_SECRET@pypi.example.com/simple/" '
        '"widget-toolkit==1.1"',
        "poetry source add --priority=explicit private https://pypi.example.com/simple/\n"
        'poetry config http-basic.private local "$READ_SECRET"\n'
        'poetry add --source private "widget-toolkit==1.1"',
    ]
    for table in site.tables.values():
        assert str(table["read_secret"]) not in page
        assert str(table["write_secret"]) not in page


@pytest.mark.parametrize(
    ("status", "says"),
    [("archived", "It takes no new uploads."), ("deprecated", "")],
)
def test_a_project_status_is_shown_with_its_reason(site: UiSite, status: str, says: str) -> None:
    site.manage("/_/status/", project="gadget-lib", status=status, reason="use widget-toolkit")
    home = site.client.simulate_get("/", headers=site.auth()).text
    assert f'<span class="badge status-{status}">{status}</span>' in home
    page = main_of(site.client.simulate_get("/project/gadget-lib/", headers=site.auth()).text)
    assert f"<strong>This project is {status}</strong>: use widget-toolkit." in page
    assert says in page
    assert "gadget_lib-2.0-py3-none-any.whl" in page, "its files are still served"


def test_a_quarantined_project_shows_no_file_no_description_and_no_install_command(
    site: UiSite,
) -> None:
    site.manage("/_/status/", project="widget-toolkit", status="quarantined", reason="malware")
    page = main_of(site.client.simulate_get("/project/widget-toolkit/", headers=site.auth()).text)
    assert "<strong>This project is quarantined</strong>: malware." in page
    assert "None of its files is served." in page
    assert ".whl" not in page
    assert "Widget toolkit" not in page, "no description"
    assert "pip install" not in page
    assert 'href="#release-1.1"' in page, "its versions are still listed"


# --- Descriptions -------------------------------------------------------------------------


def readme_of(site: UiSite, project: str) -> str:
    page = site.client.simulate_get(f"/project/{project}/", headers=site.auth()).text
    match = re.search(r'<div class="readme">(.*?)</div>\n\s*</section>', page, re.DOTALL)
    assert match, main_of(page)
    return match.group(1)


def test_a_markdown_description_is_rendered(site: UiSite) -> None:
    readme = readme_of(site, "widget-toolkit")
    assert re.search(r"<h1[^>]*>Widget toolkit", readme)
    assert "<strong>everyone</strong>" in readme
    assert '<a href="https://example.com/docs" rel="nofollow">link</a>' in readme
    assert "<table>" in readme, "GitHub-flavoured: tables"


def test_a_restructuredtext_description_is_rendered(site: UiSite) -> None:
    readme = readme_of(site, "gadget-lib")
    assert re.search(r"<h1>Gadget library", readme)
    assert "<em>emphasis</em>" in readme
    assert "<li><p>one</p></li>" in readme


@pytest.mark.parametrize("content_type", ["text/plain", "text/x-rst", None])
def test_plain_text_and_a_description_that_fails_to_render_show_escaped(
    site: UiSite, content_type: str | None
) -> None:
    """Plain text as pypi.org shows it; rST that docutils refuses (``raw`` is disabled) and
    undeclared text (read as rST) that fails, as escaped text."""
    text = PLAIN_README if content_type == "text/plain" else ".. raw:: html\n\n   <b>x</b>\n"
    site.upload(*wheel("texty", "1.0", description=text, content_type=content_type))
    readme = readme_of(site, "texty")
    assert "<b>" not in readme
    assert "&lt;b&gt;" in readme


class Elements(HTMLParser):
    """Every element and attribute of an HTML fragment."""

    def __init__(self, fragment: str) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str]] = []
        self.feed(fragment)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes += [(name, value or "") for name, value in attrs]


@pytest.mark.parametrize(
    ("text", "content_type"),
    [(MALICIOUS_MARKDOWN, "text/markdown"), (MALICIOUS_RST, "text/x-rst")],
)
def test_a_malicious_description_is_sanitised(site: UiSite, text: str, content_type: str) -> None:
    site.upload(*wheel("evil", "1.0", description=text, content_type=content_type))
    readme = readme_of(site, "evil")
    assert "Innocent" in readme
    elements = Elements(readme)
    assert not {"script", "iframe", "form", "style", "object", "embed"} & set(elements.tags)
    # GitHub-flavoured task lists keep their check boxes, disabled, outside any form.
    assert elements.tags.count("input") == [name for name, _ in elements.attributes].count(
        "disabled"
    )
    assert not [name for name, _ in elements.attributes if name.startswith("on")]
    urls = [value for name, value in elements.attributes if name in ("href", "src")]
    assert not [url for url in urls if not url.startswith(("https://", "/", "#"))], urls
    page = site.client.simulate_get("/project/evil/", headers=site.auth()).text
    assert "<script" not in page


def test_the_description_cache_keeps_the_latest_descriptions() -> None:
    cache = DescriptionCache(size=2)
    described = {key: Description(key, Markup(), []) for key in "abc"}
    cache.put("a", described["a"])
    cache.put("b", described["b"])
    assert cache.get("a") is described["a"]  # now the latest used
    cache.put("c", described["c"])
    assert cache.get("b") is None
    assert cache.get("a") is described["a"]
    assert cache.get("c") is described["c"]


def test_every_field_of_every_form_has_a_label(site: UiSite) -> None:
    for path in ("/login/", "/"):
        page = site.client.simulate_get(path, headers=site.auth()).text
        fields = re.findall(r'<(?:input|select)\b(?![^>]*type="hidden")[^>]*\bid="([^"]+)"', page)
        controls = re.findall(r"<(?:input|select)\b(?![^>]*type=\"hidden\")", page)
        assert len(fields) == len(controls) > 0, path
        for field in fields:
            assert f'<label for="{field}">' in page, f"{path}: {field}"


# --- The stylesheet -----------------------------------------------------------------------


def test_the_stylesheet_is_served_to_anyone_with_an_etag_and_revalidates(site: UiSite) -> None:
    page = site.client.simulate_get("/login/").text
    href = re.search(r'<link rel="stylesheet" href="([^"]+)">', page)
    assert href and re.fullmatch(r"/static/style\.css\?v=[0-9a-f]{12}", href.group(1))
    style = site.client.simulate_get("/static/style.css")
    assert style.status_code == 200
    assert style.headers["Content-Type"] == "text/css; charset=utf-8"
    assert "max-age=" in style.headers["Cache-Control"]
    etag = style.headers["ETag"]
    again = site.client.simulate_get("/static/style.css", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert not again.content
