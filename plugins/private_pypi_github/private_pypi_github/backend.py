"""Packages stored as release assets of a GitHub repository, the index as a file on a branch.

See ``naming.py`` for the release and asset scheme, ``access.py`` for what a token may do,
``index_file.py`` for the index file. The server's own token (``token`` / ``token_env``)
does the storage work; a client's secret is a token that ``token_access`` asks GitHub about.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, cast

from private_pypi_core.api import (
    Access,
    Backend,
    BackendConfig,
    BadRequest,
    DistFile,
    FileExists,
    IndexFile,
    StoredFile,
    parse_dist_filename,
)
from private_pypi_github import models
from private_pypi_github.access import access_of, plausible_token
from private_pypi_github.config import GitHubConfig
from private_pypi_github.errors import GitHubError
from private_pypi_github.models import Asset, Release, Repository
from private_pypi_github.naming import asset_name, release_tag

if TYPE_CHECKING:
    import requests

    from private_pypi_github.client import GitHubClient
    from private_pypi_github.index_file import IndexFileStore
    from private_pypi_github.releases import Releases

REFUSED = frozenset({401, 403, 404})
REDIRECTS = frozenset({301, 302, 303, 307, 308})
# An upload that finds a failed upload's leftover removes it and tries once more.
UPLOAD_ATTEMPTS = 2


class GitHubBackend(Backend):
    type = "github"
    config_class = GitHubConfig
    default_auth = ("tokens", "github")  # the core's API tokens, and access.GitHubTokenProvider

    def __init__(
        self, config: BackendConfig, root: Path, *, admin_secret: str | None = None
    ) -> None:
        super().__init__(config, root, admin_secret=admin_secret)
        assert isinstance(config, GitHubConfig)
        # requests costs a process about 10 MB to import: only a server with a GitHub
        # repository pays it, not every process that has this plugin installed.
        from private_pypi_github.client import GitHubClient
        from private_pypi_github.index_file import IndexFileStore
        from private_pypi_github.releases import Releases

        self.github = config
        self.client: GitHubClient = GitHubClient(config.api_url, config.server_token(admin_secret))
        self.repository_url = self.client.url(f"/repos/{config.full_name}")
        self.releases: Releases = Releases(self.client, config.full_name)
        self.index_file: IndexFileStore = IndexFileStore(
            self.client,
            config.full_name,
            config.index_filename,
            branch=self.branch,
            check_repository=self.repository,
        )
        self._lock = threading.Lock()
        self._default_branch: str | None = None
        self._assets: dict[str, Asset] = {}  # by filename: where to download from

    def token_access(self, secret: str) -> Access:
        """What the GitHub token ``secret`` may do in the repository, as GitHub says."""
        if not plausible_token(secret):
            return Access.NONE
        response = self.client.with_token(secret).request(
            "GET", self.repository_url, accept=REFUSED
        )
        if response.status_code in REFUSED:
            return Access.NONE
        return access_of(models.repository(response.json()), response.headers.get("X-OAuth-Scopes"))

    def repository(self) -> Repository:
        """The repository as the server's token sees it; an error when it cannot."""
        response = self.client.request("GET", self.repository_url, accept=REFUSED)
        if response.status_code in REFUSED:
            raise GitHubError(
                f"repository {self.github.full_name} does not exist or the server's token "
                f"cannot see it (GitHub answered {response.status_code})",
                status=response.status_code,
            )
        return models.repository(response.json())

    def branch(self) -> str:
        """The branch of the index file: ``branch`` if set, else the default branch."""
        if self.github.branch:
            return self.github.branch
        if self._default_branch is None:
            self._default_branch = self.repository().default_branch
        return self._default_branch

    def list_files(self) -> Iterator[StoredFile]:
        for asset in self.assets():
            yield StoredFile(
                filename=asset.filename,
                size=asset.size,
                upload_time=asset.created_at,
                sha256=asset.sha256,
            )

    def assets(self) -> Iterator[Asset]:
        """Every complete asset holding a file: in a published release, of its version."""
        for release in self.releases.all():
            if release.draft:
                continue
            for asset in self.releases.assets(release):
                if asset.complete and _belongs_to(asset.filename, release):
                    self._remember(asset)
                    yield asset

    def open_file(self, dist: DistFile) -> BinaryIO:
        answer = self._request_bytes(dist)
        if answer is None:
            raise FileNotFoundError(dist.filename)
        if isinstance(answer, str):
            # The signed URL is a credential itself: no token may go with it.
            answer = self.client.request("GET", answer, anonymous=True, stream=True)
        answer.raw.decode_content = True
        return cast(BinaryIO, answer.raw)

    def download_url(self, dist: DistFile) -> str | None:
        answer = self._request_bytes(dist)
        if answer is None or isinstance(answer, str):
            return answer
        answer.close()  # GitHub streams this one itself: the server will stream it too
        return None

    def write_file(self, dist: DistFile, source: Path) -> None:
        tag = release_tag(dist)
        release = self.releases.by_tag(tag) or self.releases.create(
            tag, f"{dist.project} {dist.version}"
        )
        for _ in range(UPLOAD_ATTEMPTS):
            self._clear_the_way(release, dist.filename)
            uploaded = self.releases.upload(release, source, dist.filename)
            if uploaded is not None:
                self._remember(uploaded)
                return
            # An asset of that name appeared: a concurrent upload, or a failed one's leftover.
            release = self.releases.by_tag(tag) or release
        raise GitHubError(f"GitHub kept refusing the upload of {dist.filename!r}: asset exists")

    def delete_file(self, dist: DistFile) -> None:
        asset = self._find(dist)
        with self._lock:
            self._assets.pop(dist.filename, None)
        if asset is None or not self.releases.delete_asset(asset):
            raise FileNotFoundError(dist.filename)

    def read_index(self) -> IndexFile | None:
        return self.index_file.read()

    def write_index(self, data: bytes, replaces: IndexFile | None) -> None:
        self.index_file.write(data, replaces)

    def _clear_the_way(self, release: Release, filename: str) -> None:
        """Raise ``FileExists`` if ``filename`` is stored; delete a failed upload's leftover."""
        name = asset_name(filename)
        for asset in self.releases.assets(release):
            if asset.filename != filename and asset.name != name:
                continue
            if not asset.complete:
                self.releases.delete_asset(asset)  # "starter" asset of an interrupted upload
            elif asset.filename == filename:
                raise FileExists(filename)
            else:
                raise GitHubError(
                    f"cannot store {filename!r}: its asset name {name!r} is taken by "
                    f"{asset.filename!r} in release {release.tag_name}"
                )

    def _find(self, dist: DistFile) -> Asset | None:
        """The complete asset of ``dist``, asked of GitHub."""
        release = self.releases.by_tag(release_tag(dist))
        if release is None:
            return None
        for asset in self.releases.assets(release):
            if asset.complete and asset.filename == dist.filename:
                self._remember(asset)
                return asset
        return None

    def _request_bytes(self, dist: DistFile) -> str | requests.Response | None:
        """Ask for the file's bytes: the signed URL GitHub redirects to, or GitHub's own
        streaming answer; ``None`` when the file is not stored."""
        with self._lock:
            asset = self._assets.get(dist.filename)
        fresh = asset is None
        asset = asset or self._find(dist)
        while asset is not None:
            response = self.client.download(asset.url)
            if response.status_code in REDIRECTS:
                response.close()
                return response.headers["Location"]
            if response.status_code != 404:
                return response
            with self._lock:
                self._assets.pop(dist.filename, None)
            if fresh:
                return None
            # Remembered, but deleted since, or uploaded again under a new id: ask GitHub.
            asset, fresh = self._find(dist), True
        return None

    def _remember(self, asset: Asset) -> None:
        with self._lock:
            self._assets[asset.filename] = asset


def _belongs_to(filename: str, release: Release) -> bool:
    """Whether ``filename`` (or the file it is a companion of) is of ``release``'s version:
    only there does the backend look for it."""
    for candidate in (filename, filename.rsplit(".", 1)[0]):
        try:
            return release_tag(parse_dist_filename(candidate)) == release.tag_name
        except BadRequest:
            continue
    return False
