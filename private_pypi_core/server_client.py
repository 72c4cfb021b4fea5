"""Talking to a running server, for the commands that manage it (yank, tokens, status)."""

from __future__ import annotations

from typing import Any

import requests

from private_pypi_core.errors import ServerError

TIMEOUT_SECONDS = 60


def call(
    method: str,
    url: str,
    path: str,
    credential: tuple[str, str],
    form: dict[str, str] | None = None,
) -> requests.Response:
    """``method url/path/`` with HTTP basic auth; a ``ServerError`` with the server's message
    when it cannot be reached or refuses."""
    endpoint = f"{url.rstrip('/')}/{path.strip('/')}/"
    try:
        response = requests.request(
            method, endpoint, data=form, auth=credential, timeout=TIMEOUT_SECONDS
        )
    except requests.RequestException as error:
        raise ServerError(f"cannot reach {endpoint}: {error}") from None
    if not response.ok:
        raise ServerError(f"{endpoint} answered {response.status_code}: {response.text.strip()}")
    return response


def call_json(
    method: str,
    url: str,
    path: str,
    credential: tuple[str, str],
    form: dict[str, str] | None = None,
) -> Any:
    return call(method, url, path, credential, form).json()
