"""The web UI on a real server: every answer carries one strict Content-Security-Policy (set by
the worker), which the UI's pages live within."""

from __future__ import annotations

import pytest

from tests.hardening.support import raw_get, read_auth
from tests.server import RunningServer

pytestmark = pytest.mark.e2e


def test_every_answer_has_one_strict_content_security_policy(ui_server: RunningServer) -> None:
    credential = read_auth(ui_server)
    answers = {
        "welcome": raw_get(ui_server.port, "/"),
        "login": raw_get(ui_server.port, "/login/"),
        "stylesheet": raw_get(ui_server.port, "/static/style.css"),
        "home": raw_get(ui_server.port, "/", credential),
        "project": raw_get(ui_server.port, "/project/widget-toolkit/", credential),
        "simple": raw_get(ui_server.port, "/simple/", credential),
        "401": raw_get(ui_server.port, "/simple/"),
    }
    for what, answer in answers.items():
        assert answer is not None, what
        policies = [
            value for name, value in answer.headers if name.lower() == "content-security-policy"
        ]
        assert len(policies) == 1, f"{what}: {policies}"
        directives = {d.strip() for d in policies[0].split(";")}
        assert {"default-src 'none'", "frame-ancestors 'none'", "style-src 'self'"} <= directives
        assert "unsafe-inline" not in policies[0], what
        assert "script-src" not in policies[0], f"{what}: no script may run"
    assert answers["home"] is not None and b"widget-toolkit" in answers["home"].body
    assert answers["welcome"] is not None and b"widget-toolkit" not in answers["welcome"].body


def test_ui_pages_hold_no_script_and_no_inline_style(ui_server: RunningServer) -> None:
    """What the policy would block, the pages never need."""
    credential = read_auth(ui_server)
    for path in ("/", "/login/", "/logout/", "/project/widget-toolkit/", "/project/gadget-lib/"):
        answer = raw_get(ui_server.port, path, credential)
        assert answer is not None and answer.status == 200, path
        page = answer.text.lower()
        assert "<script" not in page, path
        assert "<style" not in page and " style=" not in page, path
