"""A GitHub on 127.0.0.1: the REST endpoints the GitHub backend uses, behaving as GitHub does
where it matters, and checking every exchange against GitHub's published description.

Four listening sockets stand for GitHub's four hosts: the API (under ``/api/v3``, as on
GitHub Enterprise Server), uploads (``/api/uploads``), the signed-download host (like S3, it
refuses a request that carries an ``Authorization`` header) and the web host
(``browser_download_url``). Only the API's URL is given to the plugin; every other URL
reaches it in GitHub's answers.

What it does as GitHub does: tokens see a private repository only with a role in it (404
otherwise, 401 for an unknown token); pagination with ``Link`` headers; rate-limit headers,
and 403 when the limit is used up; 422 for a duplicate asset name; assets with special
characters renamed; an interrupted upload leaves an asset that is not ``uploaded``; 302 from an
asset's API URL to a short-lived signed URL; the contents API's ``sha`` checks (409/422),
ETags and 304s (which cost no rate limit); 422 for a release in an empty repository.

This module serves and checks; ``emulator_endpoints.py`` answers each endpoint and
``emulator_state.py`` holds the data and renders GitHub's JSON.

Every request is recorded in ``calls``. Anything that breaks the contract goes in
``violations``: a request to an endpoint GitHub does not document, a request body or a JSON
answer that does not validate against githubkit-schemas' model of that endpoint.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from tests.github import contract
from tests.github.emulator_endpoints import (
    API_ROUTES,
    DOCS,
    DROP,
    MEDIA_BINARY,
    RATE_LIMIT,
    RATE_WINDOW,
    UPLOAD_ROUTES,
    Refused,
    Reply,
    Request,
)
from tests.github.emulator_state import (
    Asset,
    Commit,
    Hosts,
    Renderer,
    Repo,
    Token,
    git_sha,
    new_id,
)

API_PREFIX = "/api/v3"
UPLOADS_PREFIX = "/api/uploads"
SIGNED_URL_SECONDS = 300
POLL_SECONDS = 0.01  # how soon a server notices it is stopped


@dataclass
class Call:
    host: str
    method: str
    path: str
    query: dict[str, str]
    status: int
    headers: dict[str, str]  # of the request
    route: str  # the emulator's handler that answered, "" if none did


@dataclass
class Fault:
    """An answer given instead of the real one, to the next ``times`` matching requests."""

    host: str
    method: str
    path: re.Pattern[str]
    reply: Reply
    times: int


@dataclass
class RateWindow:
    used: int
    reset: float


class Emulator:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.lock = threading.RLock()
        self.tokens: dict[str, Token] = {}
        self.orgs: dict[str, set[str]] = {}
        self.repos: dict[str, Repo] = {}  # by full name, lowercase
        self.commits: dict[str, Commit] = {}
        self.trees: dict[str, dict[str, bytes]] = {}
        self.windows: dict[str, RateWindow] = {}  # by login
        self.faults: list[Fault] = []
        self.interrupted_uploads = 0
        self.calls: list[Call] = []
        self.violations: list[str] = []
        self._key = secrets.token_bytes(16)
        self._servers = {
            host: _Server(("127.0.0.1", 0), _Handler, self, host)
            for host in ("api", "uploads", "objects", "web")
        }
        base = {host: f"http://127.0.0.1:{s.server_port}" for host, s in self._servers.items()}
        self.hosts = Hosts(
            api=base["api"] + API_PREFIX,
            uploads=base["uploads"] + UPLOADS_PREFIX,
            objects=base["objects"],
            web=base["web"],
        )
        self.render = Renderer(self.hosts)
        self._threads = [
            threading.Thread(target=server.serve_forever, args=(POLL_SECONDS,), daemon=True)
            for server in self._servers.values()
        ]

    @property
    def api_url(self) -> str:
        return self.hosts.api

    def start(self) -> Emulator:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        for server in self._servers.values():
            server.shutdown()
            server.server_close()

    # --- Setting the scene ---

    def add_token(self, login: str, *, scopes: str | None = None) -> str:
        """A new token of user ``login``: fine-grained, or classic with ``scopes``."""
        token = ("ghp_" if scopes is not None else "github_pat_") + secrets.token_hex(16)
        with self.lock:
            self.tokens[token] = Token(login, scopes)
        return token

    def add_repo(
        self,
        owner: str,
        name: str,
        *,
        private: bool = True,
        initialized: bool = True,
        roles: dict[str, str] | None = None,
    ) -> Repo:
        """A repository whose ``owner`` is admin; ``initialized`` gives it a first commit."""
        with self.lock:
            repo = Repo(
                id=new_id(),
                owner=owner,
                name=name,
                private=private,
                default_branch="main",
                created_at=self.clock(),
                roles={owner: "admin", **(roles or {})},
            )
            self.repos[repo.full_name.lower()] = repo
            if initialized:
                readme = f"# {name}\n".encode()
                repo.branches["main"] = self._commit({"README.md": readme}, [], "Initial commit")
            return repo

    def exhaust_rate_limit(self, login: str, reset_in: float) -> None:
        with self.lock:
            self.windows[login] = RateWindow(used=RATE_LIMIT, reset=self.clock() + reset_in)

    def fail(
        self, method: str, path: str, reply: Reply, *, times: int = 1, host: str = "api"
    ) -> None:
        """Answer the next ``times`` requests whose path (below the prefix) matches ``path``."""
        with self.lock:
            self.faults.append(Fault(host, method, re.compile(path), reply, times))

    def secondary_rate_limit(self, method: str, path: str, retry_after: int) -> None:
        message = (
            "You have exceeded a secondary rate limit. Please wait a few minutes before you "
            "try again."
        )
        body = {"message": message, "documentation_url": DOCS, "status": "403"}
        self.fail(method, path, Reply(403, body, {"Retry-After": str(retry_after)}))

    def too_many_requests(self, method: str, path: str, retry_after: int) -> None:
        body = {"message": "Too Many Requests", "documentation_url": DOCS, "status": "429"}
        self.fail(method, path, Reply(429, body, {"Retry-After": str(retry_after)}))

    def interrupt_next_upload(self) -> None:
        """The next upload fails with 502, leaving an incomplete asset (as GitHub documents)."""
        with self.lock:
            self.interrupted_uploads += 1

    # --- Looking at the result ---

    def repo(self, full_name: str) -> Repo:
        return self.repos[full_name.lower()]

    def files(self, full_name: str, branch: str | None = None) -> dict[str, bytes]:
        repo = self.repo(full_name)
        head = repo.branches.get(branch or repo.default_branch)
        return dict(self.commits[head].files) if head else {}

    def assets(self, full_name: str) -> list[tuple[str, Asset]]:
        """(tag, asset) of every asset of every release."""
        return [(r.tag_name, a) for r in self.repo(full_name).releases for a in r.assets]

    def api_calls(self) -> list[Call]:
        return [c for c in self.calls if c.host in ("api", "uploads")]

    # --- Serving ---

    def handle(self, request: Request) -> Reply:
        with self.lock:
            fault = self._fault(request)
            try:
                reply = fault.reply if fault else self._dispatch(request)
            except Refused as refusal:
                reply = refusal.reply
            if reply is not DROP:
                self._check(request, reply)
            self.calls.append(
                Call(
                    request.host,
                    request.method,
                    request.path,
                    request.query,
                    reply.status,
                    dict(request.headers),
                    request.route,
                )
            )
            return reply

    def _fault(self, request: Request) -> Fault | None:
        for fault in self.faults:
            if (
                fault.times > 0
                and fault.host == request.host
                and fault.method == request.method
                and fault.path.search(request.path)
            ):
                fault.times -= 1
                return fault
        return None

    def _dispatch(self, request: Request) -> Reply:
        if request.host == "objects":
            return self._signed_download(request)
        if request.host == "web":
            return self._browser_download(request)
        request.token = self._token(request)
        window = self._rate_window(request.login)
        routes = UPLOAD_ROUTES if request.host == "uploads" else API_ROUTES
        for method, pattern, handler in routes:
            match = pattern.fullmatch(request.path)
            if match and method == request.method:
                params = {k: unquote(v) for k, v in match.groupdict().items()}
                request.route = handler.__name__
                try:
                    reply = handler(self, request, **params)
                except Refused as refusal:
                    reply = refusal.reply
                break
        else:
            reply = Refused(404, "Not Found").reply
        if window is not None:
            if reply.status != 304 and request.path != "/rate_limit":
                window.used += 1  # a conditional request answered 304 costs nothing
            reply.headers |= _rate_headers(window)
        return reply

    def _token(self, request: Request) -> Token | None:
        header = request.headers.get("Authorization")
        if header is None:
            return None
        scheme, _, token = header.partition(" ")
        known = self.tokens.get(token) if scheme.lower() in ("bearer", "token") else None
        if known is None:
            raise Refused(401, "Bad credentials")
        return known

    def _rate_window(self, login: str | None) -> RateWindow | None:
        if login is None:
            return None
        now = self.clock()
        window = self.windows.get(login)
        if window is None or window.reset <= now:
            window = self.windows[login] = RateWindow(used=0, reset=now + RATE_WINDOW)
        if window.used >= RATE_LIMIT:
            refusal = Refused(403, f"API rate limit exceeded for user {login}.")
            refusal.reply.headers |= _rate_headers(window)
            raise refusal
        return window

    def _check(self, request: Request, reply: Reply) -> None:
        """Hold the exchange to GitHub's description (signed and web URLs are no API)."""
        if request.host in ("objects", "web"):
            return
        endpoint = contract.endpoint_for(request.method, request.path)
        if endpoint is None:
            self.violations.append(f"{request.method} {request.path}: no documented endpoint")
            return
        if request.headers.get("Content-Type", "").startswith("application/json"):
            problem = contract.check_request_body(endpoint, request.json())
            if problem:
                self.violations.append(f"{request.method} {endpoint.template} body: {problem}")
        if isinstance(reply.body, dict | list):
            problem = contract.check_response(endpoint, reply.status, reply.body)
            if problem:
                self.violations.append(
                    f"{request.method} {endpoint.template} answer {reply.status}: {problem}"
                )

    # --- Repository helpers ---

    def visible_repo(self, request: Request, owner: str, name: str) -> Repo:
        repo = self.repos.get(f"{owner}/{name}".lower())
        if repo is None or not repo.visible_to(request.login) or not _scoped(request, repo, "pull"):
            raise Refused(404, "Not Found")
        return repo

    def repo_for(self, request: Request, owner: str, name: str, role: str) -> Repo:
        repo = self.visible_repo(request, owner, name)
        if not repo.may(request.login, role) or not _scoped(request, repo, role):
            raise Refused(403, "Resource not accessible by personal access token")
        return repo

    def _commit(self, files: dict[str, bytes], parents: list[str], message: str) -> str:
        tree = self._tree(files)
        seed = json.dumps([tree, parents, message, len(self.commits)]).encode()
        sha = git_sha("commit", seed)
        self.commits[sha] = Commit(sha, tree, dict(files), parents, message, self.clock())
        return sha

    def _tree(self, files: dict[str, bytes]) -> str:
        listing = json.dumps(sorted((p, git_sha("blob", d)) for p, d in files.items())).encode()
        sha = git_sha("tree", listing)
        self.trees[sha] = dict(files)
        return sha

    def head(self, repo: Repo, branch: str) -> Commit:
        sha = repo.branches.get(branch)
        if sha is None:
            raise Refused(404, f"No commit found for the ref {branch}")
        return self.commits[sha]

    def signed_url(self, asset: Asset) -> str:
        expires = int(self.clock()) + SIGNED_URL_SECONDS
        query = {
            "X-Amz-Expires": str(SIGNED_URL_SECONDS),
            "X-Amz-Date": str(expires - SIGNED_URL_SECONDS),
            "X-Amz-Signature": self._signature(asset.id, expires),
        }
        return f"{self.hosts.objects}/release-assets/{asset.id}?{urlencode(query)}"

    def _signature(self, asset_id: int, expires: int) -> str:
        return hmac.new(self._key, f"{asset_id}:{expires}".encode(), hashlib.sha256).hexdigest()

    def _signed_download(self, request: Request) -> Reply:
        match = re.fullmatch(r"/release-assets/(\d+)", request.path)
        if match is None or request.method != "GET":
            return Reply(404, b"<Error><Code>NoSuchKey</Code></Error>")
        if "Authorization" in request.headers:
            self.violations.append(f"Authorization header sent to the signed URL {request.path}")
            return Reply(
                400,
                b"<Error><Code>InvalidArgument</Code><Message>Only one auth mechanism allowed"
                b"</Message></Error>",
            )
        expires = int(request.query.get("X-Amz-Date", "0")) + SIGNED_URL_SECONDS
        signature = request.query.get("X-Amz-Signature", "")
        if not hmac.compare_digest(signature, self._signature(int(match[1]), expires)):
            return Reply(403, b"<Error><Code>SignatureDoesNotMatch</Code></Error>")
        if self.clock() > expires:
            return Reply(403, b"<Error><Code>AccessDenied</Code><Message>Request has expired")
        for repo in self.repos.values():
            found = repo.asset(int(match[1]))
            if found is not None:
                return Reply(200, found[1].data, {"Content-Type": MEDIA_BINARY})
        return Reply(404, b"<Error><Code>NoSuchKey</Code></Error>")

    def _browser_download(self, request: Request) -> Reply:
        """``browser_download_url``: public repositories only (private ones need a browser
        session on github.com)."""
        match = re.fullmatch(r"/([^/]+)/([^/]+)/releases/download/([^/]+)/([^/]+)", request.path)
        repo = self.repos.get(f"{match[1]}/{match[2]}".lower()) if match else None
        if match is None or repo is None or repo.private:
            return Reply(404, b"Not Found")
        tag, name = unquote(match[3]), unquote(match[4])
        for release in repo.releases:
            for asset in release.assets:
                if release.tag_name == tag and asset.name == name and asset.state == "uploaded":
                    return Reply(302, None, {"Location": self.signed_url(asset)})
        return Reply(404, b"Not Found")


def _scoped(request: Request, repo: Repo, role: str) -> bool:
    """Whether the request's token, if classic, has the scope for ``role`` in ``repo``."""
    token = request.token
    if token is None or token.scopes is None:
        return True
    scopes = {s.strip() for s in token.scopes.split(",")}
    if "repo" in scopes:
        return True
    if repo.private:
        return False
    return role == "pull" or "public_repo" in scopes


def _rate_headers(window: RateWindow) -> dict[str, str]:
    return {
        "X-RateLimit-Limit": str(RATE_LIMIT),
        "X-RateLimit-Remaining": str(max(RATE_LIMIT - window.used, 0)),
        "X-RateLimit-Reset": str(int(window.reset)),
        "X-RateLimit-Used": str(window.used),
        "X-RateLimit-Resource": "core",
    }


# --- HTTP ---


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        emulator: Emulator,
        host: str,
    ) -> None:
        super().__init__(address, handler)
        self.emulator = emulator
        self.host = host


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the calls are recorded; stderr stays quiet

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        url = urlsplit(self.path)
        prefix = {"api": API_PREFIX, "uploads": UPLOADS_PREFIX}.get(self.server.host, "")
        path = url.path.removeprefix(prefix) if url.path.startswith(prefix) else "/-/not-found"
        request = Request(
            host=self.server.host,
            method=self.command,
            path=path,
            query=dict(parse_qsl(url.query)),
            headers=self.headers,
            body=body,
        )
        reply = self.server.emulator.handle(request)
        if reply is DROP:
            self.close_connection = True
            return
        self._write(reply)

    def _write(self, reply: Reply) -> None:
        if reply.body is None:
            data = b""
        elif isinstance(reply.body, bytes):
            data = reply.body
        else:
            data = json.dumps(reply.body).encode()
            reply.headers.setdefault("Content-Type", "application/json; charset=utf-8")
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD" and reply.status not in (204, 304):
            self.wfile.write(data)
