"""The repository's releases and their assets, through GitHub's releases API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

from private_pypi_github import models
from private_pypi_github.client import PAGE_SIZE, GitHubClient
from private_pypi_github.errors import GitHubError
from private_pypi_github.models import Asset, Release
from private_pypi_github.naming import asset_name

NOT_FOUND = frozenset({404})


class Releases:
    def __init__(self, client: GitHubClient, full_name: str) -> None:
        self.client = client
        self.full_name = full_name
        self.url = client.url(f"/repos/{full_name}/releases")

    def all(self) -> Iterator[Release]:
        """Every release, newest first, a page of 100 at a time."""
        for item in self.client.paginate(self.url):
            yield models.release(item)

    def by_tag(self, tag: str) -> Release | None:
        """The published release of ``tag``, or ``None``."""
        response = self.client.request(
            "GET", f"{self.url}/tags/{quote(tag, safe='')}", accept=NOT_FOUND
        )
        return None if response.status_code == 404 else models.release(response.json())

    def create(self, tag: str, title: str) -> Release:
        """Create the release of ``tag`` (and the tag, on the default branch's head); if another
        server created it meanwhile, that one."""
        response = self.client.request(
            "POST",
            self.url,
            json={"tag_name": tag, "name": title, "body": f"{title}, published by private-pypi."},
            accept=frozenset({422}),
        )
        if response.status_code != 422:
            return models.release(response.json())
        existing = self.by_tag(tag)
        if existing is not None:
            return existing
        detail = _validation_detail(response.json())
        advice = " (run private_pypi github.init_pkg_repo first)" if "empty" in detail else ""
        raise GitHubError(
            f"GitHub refused to create release {tag!r} in {self.full_name}: {detail}{advice}",
            status=422,
        )

    def assets(self, release: Release) -> tuple[Asset, ...]:
        """Every asset of ``release``: the embedded list, or the paged assets endpoint when the
        release has a page or more of them (GitHub documents no limit on the embedded list)."""
        if len(release.assets) < PAGE_SIZE:
            return release.assets
        return tuple(models.asset(item) for item in self.client.paginate(release.assets_url))

    def upload(self, release: Release, source: Path, filename: str) -> Asset | None:
        """Upload ``source`` as the asset for ``filename``; ``None`` when GitHub says an asset
        of that name already exists."""
        response = self.client.upload(
            release.upload_url, source, name=asset_name(filename), label=filename
        )
        if response.status_code == 422:
            if _is_already_exists(response.json()):
                return None
            raise GitHubError(
                f"GitHub refused the upload of {filename!r}: {_validation_detail(response.json())}",
                status=422,
            )
        return models.asset(response.json())

    def delete_asset(self, asset: Asset) -> bool:
        """Delete ``asset``; ``False`` when it was already gone."""
        response = self.client.request("DELETE", asset.url, accept=NOT_FOUND)
        return response.status_code != 404


def _is_already_exists(body: object) -> bool:
    errors = body.get("errors") if isinstance(body, dict) else None
    return any(isinstance(e, dict) and e.get("code") == "already_exists" for e in errors or [])


def _validation_detail(body: object) -> str:
    """GitHub's message of a 422, with the codes of its ``errors``."""
    if not isinstance(body, dict):
        return "validation failed"
    codes = [
        str(e.get("message") or e.get("code"))
        for e in body.get("errors") or []
        if isinstance(e, dict)
    ]
    return "; ".join([str(body.get("message", "validation failed")), *codes])
