"""A small client of GitHub's REST API: token auth, timeouts, retries, rate limits, pages.

Only the API root (``api_url``) is configured; every other URL the plugin fetches (a release's
``upload_url``, an asset's ``url``, the signed download it redirects to, the next page) is
taken from GitHub's answers, so GitHub Enterprise Server works unchanged.

Every failure is a ``GitHubError`` (an ``OSError``, which the server answers with a 503), and
its message names the request by method and path only: never a token, never a signed query.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
import requests.auth
import uritemplate
from requests.adapters import HTTPAdapter

from private_pypi_github.errors import GitHubError, GitHubUnavailable, RateLimited, message_of

log = logging.getLogger(__name__)

API_VERSION = "2022-11-28"
MEDIA_JSON = "application/vnd.github+json"
MEDIA_RAW = "application/vnd.github.raw+json"
MEDIA_BINARY = "application/octet-stream"
USER_AGENT = "private-pypi-github"
PAGE_SIZE = 100
TIMEOUT = (10.0, 60.0)  # seconds to connect, and between bytes received
# GitHub answers an upload once it has stored the whole file: allow for large files.
UPLOAD_TIMEOUT = (10.0, 600.0)
# GitHub's advice for a secondary rate limit that names no time: wait at least a minute.
SECONDARY_LIMIT_WAIT = 60.0
CONNECTIONS = 16  # per host, for the server's threads


class TokenAuth(requests.auth.AuthBase):
    """``Authorization: Bearer <token>`` (classic and fine-grained tokens alike)."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:
        return "TokenAuth(<hidden>)"


class NoAuth(requests.auth.AuthBase):
    """No credentials, and none from ``~/.netrc`` either: signed URLs refuse any."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers.pop("Authorization", None)
        return request


@dataclass(frozen=True)
class RetryPolicy:
    """How long the client keeps trying; every wait is bounded."""

    attempts: int = 4  # tries of a request that meets network errors or 5xx answers
    backoff: float = 0.5  # the first wait after a failure, doubled each time
    max_backoff: float = 8.0
    rate_limit_retries: int = 2  # waits for a rate limit, per request
    max_rate_limit_wait: float = 60.0  # a longer wait fails at once with ``RateLimited``


class GitHubClient:
    """Requests to one GitHub (``api_url``) with one token; safe to share between threads."""

    def __init__(
        self,
        api_url: str,
        token: str,
        *,
        policy: RetryPolicy | None = None,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.policy = policy or RetryPolicy()
        self.session = session or _session()
        self.clock = clock
        self.sleep = sleep
        self._auth = TokenAuth(token)
        self._exhausted_until = 0.0  # the rate limit said: nothing left until then

    def __repr__(self) -> str:
        return f"GitHubClient({self.api_url!r})"

    def with_token(self, token: str) -> GitHubClient:
        """A client for another token, sharing this one's connections."""
        return GitHubClient(
            self.api_url,
            token,
            policy=self.policy,
            session=self.session,
            clock=self.clock,
            sleep=self.sleep,
        )

    def url(self, path: str) -> str:
        """The URL of an API path such as ``/repos/OWNER/REPO``."""
        return self.api_url + path

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json: Any = None,
        body: Path | None = None,
        headers: Mapping[str, str] | None = None,
        accept: frozenset[int] = frozenset(),
        anonymous: bool = False,
        allow_redirects: bool = True,
        stream: bool = False,
    ) -> requests.Response:
        """Send a request, retrying network errors, 5xx answers and rate limits (bounded).

        Returns the response when its status is below 400 or in ``accept`` (statuses the
        caller handles); raises ``GitHubError`` otherwise. ``body`` is a file sent as the raw
        request body, reopened on every attempt. ``anonymous`` sends no credentials (signed
        URLs) and none of GitHub's API headers.
        """
        label = f"{method} {urlsplit(url).path}"
        failures = rate_limit_waits = 0
        while True:
            if not anonymous:
                self._wait_for_exhausted_limit(label)
            try:
                response = self._send(
                    method, url, params, json, body, headers, anonymous, allow_redirects, stream
                )
            except (requests.ConnectionError, requests.Timeout) as error:
                failures += 1
                if failures >= self.policy.attempts:
                    raise GitHubUnavailable(
                        f"GitHub did not answer {label} ({failures} attempts): "
                        f"{type(error).__name__}"
                    ) from None
                self._back_off(failures, label, type(error).__name__)
                continue
            self._note_rate_limit(response)
            status = response.status_code
            if status >= 500 and status not in accept:
                failures += 1
                if failures >= self.policy.attempts:
                    raise GitHubUnavailable(
                        f"GitHub answered {status} to {label} ({failures} attempts)",
                        status=status,
                        detail=message_of(response),
                    )
                response.close()
                self._back_off(failures, label, f"HTTP {status}")
                continue
            wait = self._rate_limit_wait(response)
            if wait is not None:
                rate_limit_waits += 1
                self._wait_for_rate_limit(response, wait, rate_limit_waits, label)
                continue
            if status >= 400 and status not in accept:
                detail = message_of(response)
                raise GitHubError(
                    f"GitHub answered {status} to {label}: {detail}", status=status, detail=detail
                )
            return response

    def json(self, method: str, url: str, **kwargs: Any) -> Any:
        """The JSON body of a successful request."""
        response = self.request(method, url, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise GitHubError(
                f"GitHub's answer to {method} {urlsplit(url).path} is not JSON",
                status=response.status_code,
            ) from None

    def paginate(self, url: str, params: Mapping[str, str | int] | None = None) -> Iterator[Any]:
        """Every item of a list endpoint, following the ``next`` links of ``Link`` headers."""
        next_url: str | None = url
        page_params: Mapping[str, str | int] | None = {**(params or {}), "per_page": PAGE_SIZE}
        while next_url:
            response = self.request("GET", next_url, params=page_params)
            items = response.json()
            if not isinstance(items, list):
                raise GitHubError(f"GitHub's answer to GET {urlsplit(next_url).path} is no list")
            yield from items
            next_url = response.links.get("next", {}).get("url")
            page_params = None  # the next link carries the query

    def upload(self, upload_url: str, path: Path, *, name: str, label: str) -> requests.Response:
        """POST ``path`` to a release's ``upload_url`` (an RFC 6570 template) as an asset."""
        url = uritemplate.expand(upload_url, name=name, label=label)
        return self.request(
            "POST",
            url,
            body=path,
            headers={"Content-Type": MEDIA_BINARY},
            accept=frozenset({422}),
        )

    def download(self, asset_url: str) -> requests.Response:
        """GET a release asset's bytes (its API ``url``), streamed: GitHub's redirect to a
        signed URL (not followed), its own answer, or 404 when the asset is gone."""
        return self.request(
            "GET",
            asset_url,
            headers={"Accept": MEDIA_BINARY},
            allow_redirects=False,
            stream=True,
            accept=frozenset({404}),
        )

    def _send(
        self,
        method: str,
        url: str,
        params: Mapping[str, str | int] | None,
        json: Any,
        body: Path | None,
        headers: Mapping[str, str] | None,
        anonymous: bool,
        allow_redirects: bool,
        stream: bool,
    ) -> requests.Response:
        all_headers = {"User-Agent": USER_AGENT}
        if not anonymous:
            all_headers |= {"Accept": MEDIA_JSON, "X-GitHub-Api-Version": API_VERSION}
        all_headers |= headers or {}
        options: dict[str, Any] = {
            "params": params,
            "headers": all_headers,
            "auth": NoAuth() if anonymous else self._auth,
            "allow_redirects": allow_redirects,
            "stream": stream,
            "timeout": TIMEOUT,
        }
        if body is None:
            return self.session.request(method, url, json=json, **options)
        with open(body, "rb") as data:  # streamed from disk, with its Content-Length
            all_headers["Content-Length"] = str(body.stat().st_size)
            options["timeout"] = UPLOAD_TIMEOUT
            return self.session.request(method, url, data=data, **options)

    def _back_off(self, failures: int, label: str, reason: str) -> None:
        wait = min(self.policy.backoff * 2 ** (failures - 1), self.policy.max_backoff)
        wait *= random.uniform(0.5, 1.0)  # several servers should not retry in step
        log.warning("GitHub: %s failed (%s); retrying in %.1f s", label, reason, wait)
        self.sleep(wait)

    def _note_rate_limit(self, response: requests.Response) -> None:
        if response.headers.get("X-RateLimit-Remaining") == "0":
            reset = _float(response.headers.get("X-RateLimit-Reset"))
            if reset is not None:
                self._exhausted_until = reset

    def _wait_for_exhausted_limit(self, label: str) -> None:
        """Before a request: the last answer said the rate limit is used up."""
        wait = self._exhausted_until - self.clock()
        if wait <= 0:
            return
        if wait > self.policy.max_rate_limit_wait:
            raise RateLimited(
                f"GitHub's rate limit is used up until {_utc(self._exhausted_until)} "
                f"({wait:.0f} s); {label} not sent"
            )
        log.warning("GitHub: rate limit used up; waiting %.0f s before %s", wait, label)
        self.sleep(wait)

    def _rate_limit_wait(self, response: requests.Response) -> float | None:
        """How long a rate-limit refusal asks to wait; ``None`` when it is none."""
        if response.status_code not in (403, 429):
            return None
        retry_after = _float(response.headers.get("Retry-After"))
        if retry_after is not None:
            return max(retry_after, 0.0)
        if response.headers.get("X-RateLimit-Remaining") == "0":
            reset = _float(response.headers.get("X-RateLimit-Reset")) or self.clock()
            return max(reset - self.clock(), 0.0) + 1.0  # GitHub's clock may lag ours
        if response.status_code == 429 or "rate limit" in message_of(response).lower():
            return SECONDARY_LIMIT_WAIT
        return None

    def _wait_for_rate_limit(
        self, response: requests.Response, wait: float, waits: int, label: str
    ) -> None:
        status = response.status_code
        if waits > self.policy.rate_limit_retries or wait > self.policy.max_rate_limit_wait:
            raise RateLimited(
                f"GitHub's rate limit refuses {label} (HTTP {status}) for {wait:.0f} s more, "
                f"until {_utc(self.clock() + wait)}: {message_of(response)}",
                status=status,
                detail=message_of(response),
            )
        log.warning(
            "GitHub: rate limit on %s (HTTP %d, %s); waiting %.0f s before retrying",
            label,
            status,
            _limit_reason(response),
            wait,
        )
        response.close()
        self.sleep(wait)


def _session() -> requests.Session:
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=CONNECTIONS, pool_maxsize=CONNECTIONS)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def _limit_reason(response: requests.Response) -> str:
    if "Retry-After" in response.headers:
        return f"Retry-After {response.headers['Retry-After']}"
    if response.headers.get("X-RateLimit-Remaining") == "0":
        reset = _float(response.headers.get("X-RateLimit-Reset"))
        return f"limit used up until {_utc(reset)}" if reset else "limit used up"
    return "secondary rate limit"


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%H:%M:%S UTC")
