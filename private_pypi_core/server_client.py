"""Talking to a running server, for the commands that manage it (yank, tokens, status): the
``--url`` they take, and their requests."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from private_pypi_core.errors import ConfigError, ServerError

if TYPE_CHECKING:
    import requests

TIMEOUT_SECONDS = 60
DEFAULT_URL = "http://127.0.0.1:8888"
# What comes before the host: a scheme, ``//``, and a user part up to the last ``@`` before the
# path; also in a URL that is no URL (``http:user:secret@host``, ``user:secret@host``).
_USER_INFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*:)?(//)?[^/?#]*@")


def server_url(url: str) -> str:
    """The base URL of a server given as ``--url``, checked; the index URL (``.../simple/``)
    that twine takes works too. A ``ConfigError`` never repeats a user part: it may hold a
    secret."""
    if _USER_INFO.match(url):
        raise ConfigError(
            "--url must not hold a user name or secret (the part before '@'): give the secret "
            "with --secret_env VARIABLE, or --secret"
        )
    if "?" in url or "#" in url:  # not repeated either: a query may hold a token
        raise ConfigError("--url must be the server's URL, without a query or fragment")
    try:
        parsed = urlsplit(url)
        has_host = bool(parsed.hostname) and parsed.port != 0  # a port not a number raises
    except ValueError as error:
        raise ConfigError(f"--url is not a URL ({error}): {url!r}") from None
    if parsed.scheme not in ("http", "https") or not has_host:
        raise ConfigError(f"--url must be the server's http(s) URL, e.g. {DEFAULT_URL}: {url!r}")
    return url.rstrip("/").removesuffix("/simple")


def without_user_info(url: str) -> str:
    """``url`` as it may be printed: without a user part (a secret may be in it)."""
    return _USER_INFO.sub(r"\1\2", url)


def call(
    method: str,
    url: str,
    path: str,
    credential: tuple[str, str],
    form: dict[str, str] | None = None,
) -> requests.Response:
    """``method url/path/`` with HTTP basic auth; a ``ServerError`` with the server's message
    when it cannot be reached or refuses."""
    import requests  # about 10 MB and 50 ms: paid by the commands that call, not by each start

    endpoint = f"{url.rstrip('/')}/{path.strip('/')}/"
    try:
        response = requests.request(
            method, endpoint, data=form, auth=credential, timeout=TIMEOUT_SECONDS
        )
    except requests.RequestException as error:
        raise ServerError(f"cannot reach {without_user_info(endpoint)}: {error}") from None
    if not response.ok:
        raise ServerError(
            f"{without_user_info(response.url)} answered {response.status_code}: "
            f"{response.text.strip()}"
        )
    return response


def call_json(
    method: str,
    url: str,
    path: str,
    credential: tuple[str, str],
    form: dict[str, str] | None = None,
) -> Any:
    return call(method, url, path, credential, form).json()
