"""HTML pages: the PEP 503 simple pages and the login form."""

from __future__ import annotations

from collections.abc import Iterable
from html import escape
from urllib.parse import quote

from private_pypi_core.index import IndexEntry

API_VERSION = "1.0"  # PEP 629


def _page(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n<html>\n  <head>\n"
        f'    <meta name="pypi:repository-version" content="{API_VERSION}">\n'
        f"    <title>{escape(title)}</title>\n  </head>\n  <body>\n"
        f"{body}  </body>\n</html>\n"
    )


def root_page(projects: Iterable[str]) -> str:
    links = "".join(f'    <a href="{quote(p)}/">{escape(p)}</a><br/>\n' for p in projects)
    return _page("Simple index", links)


def project_page(project: str, entries: Iterable[IndexEntry]) -> str:
    links = []
    for entry in entries:
        attributes = f'href="{quote(entry.filename)}#sha256={entry.sha256}"'
        if entry.requires_python:
            attributes += f' data-requires-python="{escape(entry.requires_python)}"'
        links.append(f"    <a {attributes}>{escape(entry.filename)}</a><br/>\n")
    return _page(
        f"Links for {project}", f"    <h1>Links for {escape(project)}</h1>\n" + "".join(links)
    )


def login_page(message: str = "") -> str:
    notice = f'    <p role="alert">{escape(message)}</p>\n' if message else ""
    form = (
        "    <h1>Log in to a package repository</h1>\n"
        f"{notice}"
        '    <form method="post" action="/login/">\n'
        '      <label>Package repository <input name="repository" autocomplete="username" '
        "required></label><br/>\n"
        '      <label>Secret <input name="secret" type="password" '
        'autocomplete="current-password" required></label><br/>\n'
        '      <button type="submit">Log in</button>\n'
        "    </form>\n"
    )
    return _page("Log in", form)
