"""Shared by the web UI tests: wheels with a description, an app (or a real server) with two
repositories of known secrets, and a browser session's login."""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Self
from urllib.parse import urlencode

import tomli_w
from falcon.testing import Result, TestClient
from urllib3 import encode_multipart_formdata

from private_pypi_core.state import ServerSettings
from private_pypi_core.web.app import create_app
from tests.core.helpers import basic_auth
from tests.hardening.support import form_fields, fs_table

SESSION_COOKIE = "private_pypi_session"
CSRF_COOKIE = "private_pypi_login_csrf"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
PUBLIC_URL = "https://pypi.example.com"

MARKDOWN_README = """\
# Widget toolkit

Widgets for **everyone**, with `code` and a [link](https://example.com/docs).

| column | value |
| ------ | ----- |
| a      | 1     |
"""

RST_README = """\
Gadget library
==============

Gadgets with *emphasis* and a `link <https://example.com/gadget>`_.

* one
* two
"""

PLAIN_README = "Plain <b>text</b> & more\nsecond line"

# Everything a README can try: each payload must reach the page inert.
MALICIOUS_MARKDOWN = """\
# Innocent

<script>window.pwned = 1</script>
[click me](javascript:window.pwned=2)
<img src="/x" onerror="window.pwned=3">
<a href="https://example.com" onclick="window.pwned=4">hover</a>
<div onmouseover="window.pwned=5">div</div>
<iframe src="https://evil.example"></iframe>
<form action="https://evil.example"><input name="secret"></form>
<style>body { display: none }</style>
"""

MALICIOUS_RST = """\
Innocent
========

`click me <javascript:window.pwned=2>`_
"""


def wheel(
    name: str,
    version: str,
    *,
    description: str = "",
    content_type: str | None = None,
    summary: str = "",
    requires_python: str | None = None,
    project_urls: dict[str, str] | None = None,
) -> tuple[str, bytes]:
    """A small wheel (filename, bytes) whose core metadata holds these fields, the description
    in the message body as build backends write it; the same arguments give the same bytes."""
    module = re.sub(r"[-_.]+", "_", name).lower()
    headers = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    if summary:
        headers.append(f"Summary: {summary}")
    if requires_python:
        headers.append(f"Requires-Python: {requires_python}")
    for label, url in (project_urls or {}).items():
        headers.append(f"Project-URL: {label}, {url}")
    if content_type:
        headers.append(f"Description-Content-Type: {content_type}")
    metadata = "\n".join(headers) + "\n\n" + description
    dist_info = f"{module}-{version}.dist-info"
    buffer = io.BytesIO()
    members = {
        f"{module}/__init__.py": f"VERSION = {version!r}\n",
        f"{dist_info}/METADATA": metadata,
        f"{dist_info}/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for member, text in members.items():
            # A fixed date: the same arguments always give the same bytes.
            archive.writestr(zipfile.ZipInfo(member, date_time=(2020, 1, 1, 0, 0, 0)), text)
    return f"{module}-{version}-py3-none-any.whl", buffer.getvalue()


def two_repositories(**local_extra: object) -> dict[str, dict[str, object]]:
    """Repository ``local`` (its table takes ``local_extra``) and ``other``, fresh secrets."""
    return {"local": fs_table("local", **local_extra), "other": fs_table("other")}


@dataclass
class UiSite:
    """The app in process on a config of known secrets."""

    client: TestClient
    tables: dict[str, dict[str, object]]

    @classmethod
    def open(
        cls, root: Path, tables: dict[str, dict[str, object]], *, public_url: str = ""
    ) -> Self:
        root.mkdir(parents=True, exist_ok=True)
        config = root.parent / f"{root.name}-config.toml"
        config.write_text(tomli_w.dumps(tables))
        admin = root.parent / f"{root.name}-admin.toml"
        admin.write_text(
            tomli_w.dumps(
                {
                    name: {"type": "file_system", "raw": str(table["write_secret"])}
                    for name, table in tables.items()
                }
            )
        )
        settings = ServerSettings(
            root=root,
            config=str(config),
            admin_secret=str(admin),
            extra_index_url="",
            public_url=public_url,
        )
        return cls(TestClient(create_app(settings)), tables)

    def auth(self, repository: str = "local", kind: str = "read") -> dict[str, str]:
        return basic_auth(repository, str(self.tables[repository][f"{kind}_secret"]))

    def upload(self, filename: str, data: bytes, *, repository: str = "local") -> None:
        name, version = filename.split("-")[:2]
        fields = form_fields(filename, data, name=name, version=version)
        body, content_type = encode_multipart_formdata(
            [*fields, ("content", (filename, data, "application/octet-stream"))]
        )
        headers = {**self.auth(repository, "write"), "Content-Type": content_type}
        result = self.client.simulate_post("/simple/", body=body, headers=headers)
        assert result.status_code == 200, result.text

    def manage(self, path: str, repository: str = "local", **form: str) -> None:
        """POST a write form (``/yank/``, ``/_/status/``) with the write secret."""
        headers = {**self.auth(repository, "write"), **FORM}
        result = self.client.simulate_post(path, body=urlencode(form), headers=headers)
        assert result.status_code == 200, result.text

    def log_in(self, repository: str = "local", *, next_page: str | None = None) -> Result:
        """The answer to a login through the form (its CSRF cookie and token included)."""
        token = self.client.simulate_get("/login/").cookies[CSRF_COOKIE].value
        form = {
            "repository": repository,
            "secret": str(self.tables[repository]["read_secret"]),
            "csrf": token,
        }
        if next_page is not None:
            form["next"] = next_page
        headers = {**FORM, "Cookie": f"{CSRF_COOKIE}={token}"}
        return self.client.simulate_post("/login/", body=urlencode(form), headers=headers)

    def session(self, repository: str = "local") -> dict[str, str]:
        """The cookies of a logged-in browser."""
        return {SESSION_COOKIE: self.log_in(repository).cookies[SESSION_COOKIE].value}
