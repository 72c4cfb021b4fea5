"""The plugin's errors and GitHub's words in them, apart from the HTTP client (``client``)
that raises most of them: the modules that only raise or catch them, or read an answer, import
no HTTP library."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import requests


class GitHubError(OSError):
    """GitHub refused or failed a request; ``status`` is its HTTP status, if it answered."""

    def __init__(self, message: str, *, status: int | None = None, detail: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail  # GitHub's own message, e.g. "Not Found"


class GitHubUnavailable(GitHubError):
    """GitHub could not be reached, or kept failing (5xx), after the retries."""


class RateLimited(GitHubError):
    """GitHub's rate limit refuses requests for longer than the client waits."""


def message_of(response: requests.Response) -> str:
    """GitHub's message in an error answer (its JSON ``message``), or the HTTP reason."""
    try:
        message = response.json().get("message")
    except (ValueError, AttributeError):
        message = None
    return str(message) if message else (response.reason or f"HTTP {response.status_code}")
