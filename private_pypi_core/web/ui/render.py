"""The UI's templates (Jinja2, every value escaped unless it is ``Markup``) and its stylesheet,
both shipped inside the package."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.resources import files
from typing import Any

import falcon
import falcon.asgi
import jinja2

HTML = "text/html; charset=utf-8"
PACKAGE = "private_pypi_core.web.ui"


@dataclass(frozen=True)
class Stylesheet:
    body: bytes
    digest: str  # of the body, hex

    @property
    def etag(self) -> str:
        return f'"{self.digest}"'

    @property
    def url(self) -> str:
        """Changes with the content, so a browser may keep the stylesheet long."""
        return f"/static/style.css?v={self.digest[:12]}"


def _stylesheet() -> Stylesheet:
    body = (files(PACKAGE) / "static" / "style.css").read_bytes()
    return Stylesheet(body, hashlib.sha256(body).hexdigest()[:32])


STYLESHEET = _stylesheet()

_environment = jinja2.Environment(
    loader=jinja2.PackageLoader(PACKAGE),
    autoescape=True,
    undefined=jinja2.StrictUndefined,  # a missing value is a bug, not an empty string
    trim_blocks=True,
    lstrip_blocks=True,
)
_environment.globals["stylesheet_url"] = STYLESHEET.url


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


_environment.filters["utc"] = _utc


def render(template: str, **context: Any) -> str:
    """The page ``template`` (a file of ``templates/``) shows with ``context``."""
    return _environment.get_template(template).render(**context)


def serve_page(resp: falcon.asgi.Response, template: str, **context: Any) -> None:
    """Answer with a rendered page, kept by no cache: it shows what a credential opens, and
    after a logout the back button must not show it again."""
    resp.content_type = HTML
    resp.cache_control = ["no-store"]
    resp.text = render(template, **context)
