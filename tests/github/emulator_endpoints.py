"""The emulated GitHub's REST endpoints: one function per endpoint, and the requests and
answers they exchange.

An endpoint takes the emulator, the request and the path's parameters, and returns a
``Reply`` or raises ``Refused``, with GitHub's status and wording.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from tests.github.emulator_state import Asset, Release, Token, git_sha, github_asset_name, new_id

if TYPE_CHECKING:
    from tests.github.emulator import Emulator

DOCS = "https://docs.github.com/rest"
RATE_LIMIT = 5000
RATE_WINDOW = 3600
DEFAULT_PER_PAGE, MAX_PER_PAGE = 30, 100
MEDIA_BINARY = "application/octet-stream"
MEDIA_RAW = "application/vnd.github.raw+json"


@dataclass
class Request:
    host: str  # "api", "uploads", "objects" or "web"
    method: str
    path: str  # below the host's prefix, still percent-encoded
    query: dict[str, str]
    headers: Message
    body: bytes
    token: Token | None = None  # set once the Authorization header is checked
    route: str = ""  # the handler that answers it

    @property
    def login(self) -> str | None:
        return self.token.login if self.token else None

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            raise Refused(400, "Problems parsing JSON") from None


@dataclass
class Reply:
    status: int
    body: Any = None  # JSON, raw bytes, or None
    headers: dict[str, str] = field(default_factory=dict)


DROP = Reply(0)  # close the connection without answering


class Refused(Exception):
    """An error answer, as GitHub words it."""

    def __init__(self, status: int, message: str, errors: list[dict[str, str]] | None = None):
        super().__init__(message)
        body: dict[str, Any] = {
            "message": message,
            "documentation_url": DOCS,
            "status": str(status),
        }
        if errors is not None:
            body["errors"] = errors
        self.reply = Reply(status, body)


def paginated(emulator: Emulator, request: Request, items: list[Any]) -> Reply:
    """One page of ``items`` (``per_page``, ``page``) with GitHub's ``Link`` header."""
    per_page = min(int(request.query.get("per_page", DEFAULT_PER_PAGE)), MAX_PER_PAGE)
    page = int(request.query.get("page", 1))
    last = max((len(items) + per_page - 1) // per_page, 1)
    base = (emulator.hosts.api if request.host == "api" else emulator.hosts.uploads) + request.path

    def link(number: int, rel: str) -> str:
        query = urlencode({**request.query, "per_page": per_page, "page": number})
        return f'<{base}?{query}>; rel="{rel}"'

    links = []
    if page < last:
        links += [link(page + 1, "next"), link(last, "last")]
    if page > 1:
        links += [link(1, "first"), link(page - 1, "prev")]
    headers = {"Link": ", ".join(links)} if links else {}
    return Reply(200, items[(page - 1) * per_page : page * per_page], headers)


Handler = Callable[..., Reply]
REPO = r"/repos/(?P<owner>[^/]+)/(?P<name>[^/]+)"


def get_user(emulator: Emulator, request: Request) -> Reply:
    if request.login is None:
        raise Refused(401, "Requires authentication")
    return Reply(200, emulator.render.user(request.login, private=True))


def create_repository(emulator: Emulator, request: Request, org: str | None = None) -> Reply:
    login = request.login
    if login is None:
        raise Refused(401, "Requires authentication")
    owner = org or login
    if org is not None and login not in emulator.orgs.get(org, set()):
        raise Refused(404, "Not Found")
    body = request.json()
    name = body["name"]
    if f"{owner}/{name}".lower() in emulator.repos:
        raise Refused(
            422,
            "Repository creation failed.",
            [
                {
                    "resource": "Repository",
                    "code": "custom",
                    "field": "name",
                    "message": "name already exists on this account",
                }
            ],
        )
    repo = emulator.add_repo(
        owner,
        name,
        private=bool(body.get("private", False)),
        initialized=bool(body.get("auto_init", False)),
        roles={login: "admin"},
    )
    repo.description = body.get("description")
    return Reply(201, emulator.render.repository(repo, login))


def get_repository(emulator: Emulator, request: Request, **names: str) -> Reply:
    repo = emulator.visible_repo(request, names["owner"], names["name"])
    reply = Reply(200, emulator.render.repository(repo, request.login))
    if request.token is not None and request.token.scopes is not None:
        reply.headers["X-OAuth-Scopes"] = request.token.scopes
    return reply


def rate_limit(emulator: Emulator, request: Request) -> Reply:
    window = emulator.windows.get(request.login) if request.login else None
    used = window.used if window else 0
    reset = int(window.reset) if window else int(emulator.clock()) + RATE_WINDOW
    core = {"limit": RATE_LIMIT, "remaining": RATE_LIMIT - used, "reset": reset, "used": used}
    search = {"limit": 30, "remaining": 30, "reset": reset, "used": 0}
    return Reply(200, {"resources": {"core": core, "search": search}, "rate": core})


def list_releases(emulator: Emulator, request: Request, **names: str) -> Reply:
    repo = emulator.visible_repo(request, names["owner"], names["name"])
    shown = [r for r in repo.releases if not r.draft or repo.may(request.login, "push")]
    return paginated(emulator, request, [emulator.render.release(repo, r) for r in shown])


def release_by_tag(emulator: Emulator, request: Request, tag: str, **names: str) -> Reply:
    repo = emulator.visible_repo(request, names["owner"], names["name"])
    for release in repo.releases:
        if release.tag_name == tag and not release.draft:
            return Reply(200, emulator.render.release(repo, release))
    raise Refused(404, "Not Found")


def create_release(emulator: Emulator, request: Request, **names: str) -> Reply:
    repo = emulator.repo_for(request, names["owner"], names["name"], "push")
    assert request.login is not None
    body = request.json()
    if not repo.branches:
        raise Refused(422, "Repository is empty.")
    if any(r.tag_name == body["tag_name"] for r in repo.releases):
        raise Refused(
            422,
            "Validation Failed",
            [{"resource": "Release", "code": "already_exists", "field": "tag_name"}],
        )
    release = Release(
        id=new_id(),
        tag_name=body["tag_name"],
        name=body.get("name"),
        body=body.get("body"),
        draft=bool(body.get("draft", False)),
        target_commitish=body.get("target_commitish") or repo.default_branch,
        author=request.login,
        created_at=emulator.clock(),
    )
    repo.releases.insert(0, release)
    return Reply(201, emulator.render.release(repo, release))


def list_assets(emulator: Emulator, request: Request, release_id: str, **names: str) -> Reply:
    repo = emulator.visible_repo(request, names["owner"], names["name"])
    release = repo.release(int(release_id))
    if release is None:
        raise Refused(404, "Not Found")
    rendered = [emulator.render.asset(repo, release, a) for a in release.assets]
    return paginated(emulator, request, rendered)


def get_asset(emulator: Emulator, request: Request, asset_id: str, **names: str) -> Reply:
    repo = emulator.visible_repo(request, names["owner"], names["name"])
    found = repo.asset(int(asset_id))
    if found is None:
        raise Refused(404, "Not Found")
    release, asset = found
    if request.headers.get("Accept") == MEDIA_BINARY:
        return Reply(302, None, {"Location": emulator.signed_url(asset)})
    return Reply(200, emulator.render.asset(repo, release, asset))


def delete_asset(emulator: Emulator, request: Request, asset_id: str, **names: str) -> Reply:
    repo = emulator.repo_for(request, names["owner"], names["name"], "push")
    found = repo.asset(int(asset_id))
    if found is None:
        raise Refused(404, "Not Found")
    found[0].assets.remove(found[1])
    return Reply(204)


def upload_asset(emulator: Emulator, request: Request, release_id: str, **names: str) -> Reply:
    repo = emulator.repo_for(request, names["owner"], names["name"], "push")
    assert request.login is not None
    release = repo.release(int(release_id))
    if release is None:
        raise Refused(404, "Not Found")
    if "name" not in request.query:
        raise Refused(422, "Validation Failed", [{"resource": "ReleaseAsset", "code": "missing"}])
    if not request.headers.get("Content-Type"):
        raise Refused(422, "Validation Failed", [{"resource": "ReleaseAsset", "code": "invalid"}])
    name = github_asset_name(request.query["name"])
    if any(a.name == name for a in release.assets):
        raise Refused(
            422,
            "Validation Failed",
            [{"resource": "ReleaseAsset", "code": "already_exists", "field": "name"}],
        )
    interrupted = emulator.interrupted_uploads > 0
    asset = Asset(
        id=new_id(),
        name=name,
        label=request.query.get("label"),
        content_type=request.headers["Content-Type"],
        data=b"" if interrupted else request.body,
        state="open" if interrupted else "uploaded",
        uploader=request.login,
        created_at=emulator.clock(),
    )
    release.assets.append(asset)
    if interrupted:
        emulator.interrupted_uploads -= 1
        raise Refused(502, "Server Error")
    return Reply(201, emulator.render.asset(repo, release, asset))


def get_contents(emulator: Emulator, request: Request, path: str, **names: str) -> Reply:
    repo = emulator.visible_repo(request, names["owner"], names["name"])
    if not repo.branches:
        raise Refused(404, "This repository is empty.")
    ref = request.query.get("ref") or repo.default_branch
    files = emulator.head(repo, ref).files
    if path not in files:
        raise Refused(404, "Not Found")
    data = files[path]
    etag = f'"{git_sha("blob", data)}"'
    if request.headers.get("If-None-Match") == etag:
        return Reply(304, None, {"ETag": etag})
    return Reply(200, emulator.render.content_file(repo, path, data, ref), {"ETag": etag})


def put_contents(emulator: Emulator, request: Request, path: str, **names: str) -> Reply:
    repo = emulator.repo_for(request, names["owner"], names["name"], "push")
    body = request.json()
    branch = body.get("branch") or repo.default_branch
    if repo.branches and branch not in repo.branches:
        raise Refused(404, f"Branch {branch} not found")
    if not repo.branches and branch != repo.default_branch:
        raise Refused(404, f"Branch {branch} not found")
    head = repo.branches.get(branch)
    files = dict(emulator.commits[head].files) if head else {}
    current = files.get(path)
    if current is not None and "sha" not in body:
        raise Refused(422, 'Invalid request.\n\n"sha" wasn\'t supplied.')
    if "sha" in body and (current is None or git_sha("blob", current) != body["sha"]):
        raise Refused(409, f"{path} does not match {body['sha']}")
    files[path] = base64.b64decode(body["content"])
    repo.branches[branch] = emulator._commit(files, [head] if head else [], body["message"])
    commit = emulator.commits[repo.branches[branch]]
    rendered = emulator.render.file_commit(repo, path, files[path], commit)
    return Reply(201 if current is None else 200, rendered)


def get_blob(emulator: Emulator, request: Request, sha: str, **names: str) -> Reply:
    repo = emulator.visible_repo(request, names["owner"], names["name"])
    for commit in emulator.commits.values():
        for data in commit.files.values():
            if git_sha("blob", data) == sha:
                if request.headers.get("Accept") == MEDIA_RAW:
                    return Reply(200, data, {"Content-Type": "application/vnd.github.raw"})
                return Reply(200, emulator.render.blob(repo, sha, data))
    raise Refused(404, "Not Found")


def get_ref(emulator: Emulator, request: Request, branch: str, **names: str) -> Reply:
    repo = emulator.visible_repo(request, names["owner"], names["name"])
    if not repo.branches:
        raise Refused(409, "Git Repository is empty.")
    if branch not in repo.branches:
        raise Refused(404, "Not Found")
    return Reply(200, emulator.render.git_ref(repo, branch, repo.branches[branch]))


def create_ref(emulator: Emulator, request: Request, **names: str) -> Reply:
    repo = emulator.repo_for(request, names["owner"], names["name"], "push")
    body = request.json()
    branch = body["ref"].removeprefix("refs/heads/")
    if body["sha"] not in emulator.commits:
        raise Refused(422, "Object does not exist")
    if branch in repo.branches:
        raise Refused(422, "Reference already exists")
    repo.branches[branch] = body["sha"]
    return Reply(201, emulator.render.git_ref(repo, branch, body["sha"]))


def update_ref(emulator: Emulator, request: Request, branch: str, **names: str) -> Reply:
    repo = emulator.repo_for(request, names["owner"], names["name"], "push")
    body = request.json()
    if branch not in repo.branches:
        raise Refused(422, "Reference does not exist")
    if body["sha"] not in emulator.commits:
        raise Refused(422, "Object does not exist")
    if not body.get("force") and repo.branches[branch] not in _ancestors(emulator, body["sha"]):
        raise Refused(422, "Update is not a fast forward")
    repo.branches[branch] = body["sha"]
    return Reply(200, emulator.render.git_ref(repo, branch, body["sha"]))


def _ancestors(emulator: Emulator, sha: str) -> set[str]:
    seen, todo = set(), [sha]
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo += emulator.commits[current].parents
    return seen


def create_tree(emulator: Emulator, request: Request, **names: str) -> Reply:
    repo = emulator.repo_for(request, names["owner"], names["name"], "push")
    body = request.json()
    files = dict(emulator.trees.get(body.get("base_tree", ""), {}))
    for entry in body["tree"]:
        if "content" not in entry:
            raise Refused(422, "tree entries without content are not emulated")
        files[entry["path"]] = entry["content"].encode()
    sha = emulator._tree(files)
    return Reply(201, emulator.render.git_tree(repo, sha, files))


def get_commit(emulator: Emulator, request: Request, sha: str, **names: str) -> Reply:
    repo = emulator.visible_repo(request, names["owner"], names["name"])
    if sha not in emulator.commits:
        raise Refused(404, "Not Found")
    return Reply(200, emulator.render.git_commit(repo, emulator.commits[sha]))


def create_commit(emulator: Emulator, request: Request, **names: str) -> Reply:
    repo = emulator.repo_for(request, names["owner"], names["name"], "push")
    body = request.json()
    if body["tree"] not in emulator.trees or any(
        p not in emulator.commits for p in body.get("parents", [])
    ):
        raise Refused(422, "Tree SHA does not exist")
    sha = emulator._commit(emulator.trees[body["tree"]], body.get("parents", []), body["message"])
    return Reply(201, emulator.render.git_commit(repo, emulator.commits[sha]))


def create_pages(emulator: Emulator, request: Request, **names: str) -> Reply:
    repo = emulator.repo_for(request, names["owner"], names["name"], "admin")
    if repo.pages is not None:
        raise Refused(409, "GitHub Pages is already enabled.")
    source = request.json()["source"]
    if source["branch"] not in repo.branches:
        raise Refused(422, "The branch does not exist", [{"resource": "Page", "code": "invalid"}])
    repo.pages = {"branch": source["branch"], "path": source.get("path", "/")}
    return Reply(201, emulator.render.page(repo))


def get_pages(emulator: Emulator, request: Request, **names: str) -> Reply:
    repo = emulator.visible_repo(request, names["owner"], names["name"])
    if repo.pages is None:
        raise Refused(404, "Not Found")
    return Reply(200, emulator.render.page(repo))


def _routes(*routes: tuple[str, str, Handler]) -> list[tuple[str, re.Pattern[str], Handler]]:
    return [(method, re.compile(path), handler) for method, path, handler in routes]


API_ROUTES = _routes(
    ("GET", "/user", get_user),
    ("POST", "/user/repos", create_repository),
    ("POST", "/orgs/(?P<org>[^/]+)/repos", create_repository),
    ("GET", "/rate_limit", rate_limit),
    ("GET", REPO, get_repository),
    ("GET", REPO + "/releases", list_releases),
    ("POST", REPO + "/releases", create_release),
    ("GET", REPO + "/releases/tags/(?P<tag>[^/]+)", release_by_tag),
    ("GET", REPO + r"/releases/assets/(?P<asset_id>\d+)", get_asset),
    ("DELETE", REPO + r"/releases/assets/(?P<asset_id>\d+)", delete_asset),
    ("GET", REPO + r"/releases/(?P<release_id>\d+)/assets", list_assets),
    ("GET", REPO + "/contents/(?P<path>.+)", get_contents),
    ("PUT", REPO + "/contents/(?P<path>.+)", put_contents),
    ("GET", REPO + r"/git/blobs/(?P<sha>\w+)", get_blob),
    ("GET", REPO + "/git/ref/heads/(?P<branch>.+)", get_ref),
    ("POST", REPO + "/git/refs", create_ref),
    ("PATCH", REPO + "/git/refs/heads/(?P<branch>.+)", update_ref),
    ("POST", REPO + "/git/trees", create_tree),
    ("GET", REPO + r"/git/commits/(?P<sha>\w+)", get_commit),
    ("POST", REPO + "/git/commits", create_commit),
    ("POST", REPO + "/pages", create_pages),
    ("GET", REPO + "/pages", get_pages),
)
UPLOAD_ROUTES = _routes(("POST", REPO + r"/releases/(?P<release_id>\d+)/assets", upload_asset))
