"""The remote index file: a file on a branch, through GitHub's contents API.

Its version is the blob ``sha``. A write names the ``sha`` it replaces, so GitHub refuses a
write from a stale read (409), and a create without ``sha`` when the file exists (422): the
compare-and-swap the core needs. As a branch rule refusing the commit is a 409 too, a refusal
is only a conflict when a fresh read shows another version. Reads are conditional
(``If-None-Match``): an unchanged file answers 304, which costs no rate limit, and comes from
memory.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable
from urllib.parse import quote

from private_pypi_core.api import IndexConflict, IndexFile
from private_pypi_github import models
from private_pypi_github.client import MEDIA_RAW, GitHubClient
from private_pypi_github.errors import GitHubError, message_of

COMMIT_MESSAGE = "Update the package index (private-pypi)"


class IndexFileStore:
    def __init__(
        self,
        client: GitHubClient,
        full_name: str,
        path: str,
        branch: Callable[[], str],
        check_repository: Callable[[], object],
    ) -> None:
        """``branch`` names the branch; ``check_repository`` raises when the repository is
        not visible (GitHub answers 404 for a missing file and a hidden repository alike)."""
        self.client = client
        self.path = path
        self.url = client.url(f"/repos/{full_name}/contents/{quote(path)}")
        self.branch = branch
        self.check_repository = check_repository
        self._lock = threading.Lock()
        self._cached: tuple[str, IndexFile] | None = None  # (ETag, what it tagged)

    def read(self) -> IndexFile | None:
        with self._lock:
            cached = self._cached
        headers = {"If-None-Match": cached[0]} if cached else {}
        response = self.client.request(
            "GET",
            self.url,
            params={"ref": self.branch()},
            headers=headers,
            accept=frozenset({404}),
        )
        if response.status_code == 304 and cached:
            return cached[1]
        if response.status_code == 404:
            self.check_repository()
            with self._lock:
                self._cached = None
            return None
        content = models.content_file(response.json())
        data = content.data if content.data is not None else self._blob(content)
        index_file = IndexFile(data=data, version=content.sha)
        etag = response.headers.get("ETag")
        with self._lock:
            self._cached = (etag, index_file) if etag else None
        return index_file

    def write(self, data: bytes, replaces: IndexFile | None) -> None:
        body = {
            "message": COMMIT_MESSAGE,
            "content": base64.b64encode(data).decode(),
            "branch": self.branch(),
        }
        if replaces is not None:
            body["sha"] = replaces.version
        response = self.client.request("PUT", self.url, json=body, accept=frozenset({409, 422}))
        if response.status_code not in (409, 422):
            return
        current = self.read()
        if (current and current.version) != (replaces and replaces.version):
            raise IndexConflict(f"{self.path} changed since it was read")
        raise GitHubError(
            f"GitHub refused to write {self.path}: {message_of(response)}",
            status=response.status_code,
        )

    def _blob(self, content: models.ContentFile) -> bytes:
        """A file too large for the contents API (over 1 MB), raw from its blob."""
        if content.git_url is None:
            raise GitHubError(f"GitHub gave neither the content nor the blob of {self.path}")
        return self.client.request("GET", content.git_url, headers={"Accept": MEDIA_RAW}).content
