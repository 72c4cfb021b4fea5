"""``private_pypi github.init_pkg_repo`` and ``private_pypi github.gen_gh_pages``."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import tomli_w
import typer

from private_pypi_core.api import (
    DistFile,
    IndexConflict,
    Progress,
    check_repository_name,
    new_index_file,
    progress_bar,
    render_site,
)
from private_pypi_github.backend import GitHubBackend
from private_pypi_github.config import DEFAULT_API_URL, DEFAULT_INDEX_FILENAME, GitHubConfig
from private_pypi_github.pages import PAGES_BRANCH, commit_site, enable_pages
from private_pypi_github.provision import add_file, ensure_branch, ensure_repository
from private_pypi_github.workflow import TOKEN_SECRET, WORKFLOW_PATH, workflow

Owner = Annotated[
    str, typer.Option("--owner", help="The repository's owner: your user or an organisation.")
]
Repo = Annotated[str, typer.Option("--repo", help="The repository's name.")]
Token = Annotated[
    str | None,
    typer.Option(
        "--token",
        help="A GitHub token that may write to the repository (classic: scopes repo, workflow).",
    ),
]
TokenEnv = Annotated[
    str | None, typer.Option("--token_env", help="Read the token from this environment variable.")
]
Branch = Annotated[
    str,
    typer.Option("--branch", help="The branch of the index file; default: the default branch."),
]
IndexFilename = Annotated[
    str, typer.Option("--index_filename", help="The index file's path in the repository.")
]
ApiUrl = Annotated[
    str,
    typer.Option("--api_url", help="GitHub's API; https://HOST/api/v3 for Enterprise Server."),
]


def init_pkg_repo(
    name: Annotated[str, typer.Option("--name", help="Name of the package repository.")],
    owner: Owner,
    repo: Repo,
    token: Token = None,
    token_env: TokenEnv = None,
    branch: Branch = "",
    index_filename: IndexFilename = DEFAULT_INDEX_FILENAME,
    api_url: ApiUrl = DEFAULT_API_URL,
    enable_gh_pages: Annotated[
        bool,
        typer.Option("--enable_gh_pages", help="Also publish the index with GitHub Pages."),
    ] = False,
) -> None:
    """Set up a GitHub repository to hold packages, and print its config.

    Creates the repository (private) if missing, commits the index file and a workflow that
    rebuilds it on release events, and with --enable_gh_pages publishes the index as a
    static site. Running it again is safe: what exists is left as it is.
    """
    check_repository_name(name)
    backend = _backend(name, owner, repo, branch, index_filename, api_url, token, token_env)
    config = backend.github
    with _reported():
        repository, created = ensure_repository(backend.client, owner, repo)
        _note(f"{'Created' if created else 'Found'} repository {config.full_name}.")
        default = repository.default_branch
        # The workflow first (it also gives an empty repository its default branch), the index
        # last: GitHub asks for the `workflow` scope to create a release on a head commit that
        # touches .github/workflows.
        text = workflow(config, gh_pages=enable_gh_pages)
        message = "Add the private-pypi index workflow"
        if add_file(backend.client, config.full_name, default, WORKFLOW_PATH, text, message):
            _note(f"Committed {WORKFLOW_PATH} to {default!r}.")
        if branch and ensure_branch(backend.client, config.full_name, branch, default):
            _note(f"Created branch {branch!r} for the index file.")
        if backend.read_index() is None:
            with contextlib.suppress(IndexConflict):  # written meanwhile: as good
                backend.write_index(new_index_file(), replaces=None)
                _note(f"Committed the index file {index_filename} to {backend.branch()!r}.")
        if enable_gh_pages:
            commit_site(backend.client, config.full_name, PAGES_BRANCH, _site(backend))
            url = enable_pages(backend.client, config.full_name, PAGES_BRANCH)
            _note(f"GitHub Pages serves branch {PAGES_BRANCH!r}" + (f" at {url}" if url else ""))
    _print_config(config, token_env)


def gen_gh_pages(
    owner: Owner,
    repo: Repo,
    token: Token = None,
    token_env: TokenEnv = None,
    branch: Branch = "",
    index_filename: IndexFilename = DEFAULT_INDEX_FILENAME,
    api_url: ApiUrl = DEFAULT_API_URL,
    pages_branch: Annotated[
        str, typer.Option("--pages_branch", help="The branch GitHub Pages serves.")
    ] = PAGES_BRANCH,
) -> None:
    """Publish the package index as a static site (PEP 503 HTML and PEP 691 JSON pages) on the
    GitHub Pages branch."""
    backend = _backend(
        f"{owner}/{repo}", owner, repo, branch, index_filename, api_url, token, token_env
    )
    config = backend.github
    with _reported():
        with progress_bar("Listing release assets", "assets") as progress:
            site = _site(backend, progress)
        commit = commit_site(backend.client, config.full_name, pages_branch, site)
    projects = sum(path.endswith("/index.html") for path in site)
    if commit:
        typer.echo(f"Published {projects} project pages to {pages_branch!r} ({commit[:12]}).")
    else:
        typer.echo(f"{pages_branch!r} already holds the site of {projects} project pages.")


def _backend(
    name: str,
    owner: str,
    repo: str,
    branch: str,
    index_filename: str,
    api_url: str,
    token: str | None,
    token_env: str | None,
) -> GitHubBackend:
    config = GitHubConfig(
        name=name,
        type=GitHubBackend.type,
        owner=owner,
        repo=repo,
        branch=branch,
        index_filename=index_filename,
        api_url=api_url,
        token=_token(token, token_env),
    )
    return GitHubBackend(config, Path.cwd())


def _site(backend: GitHubBackend, progress: Progress | None = None) -> dict[str, bytes]:
    """The core's static site, each file linked to its asset's download URL; ``progress``
    counts the assets listed (a request per release: the long part for many releases)."""
    progress = progress or Progress()
    urls: dict[str, str] = {}
    for asset in backend.assets():
        urls[asset.filename] = asset.browser_download_url
        progress.advance()

    def file_url(dist: DistFile) -> str | None:
        return urls.get(dist.filename)

    return {".nojekyll": b"", **render_site(backend, file_url=file_url)}  # files as they are


def _token(token: str | None, token_env: str | None) -> str:
    value = token or (os.environ.get(token_env, "") if token_env else "")
    if not value:
        raise typer.BadParameter("give --token, or --token_env naming a set variable")
    return value


@contextlib.contextmanager
def _reported() -> Iterator[None]:
    """GitHub's refusals and failures (``GitHubError``, or any other ``OSError``) as one line
    and exit code 2, like the core's errors."""
    try:
        yield
    except OSError as error:
        typer.echo(f"Error: {error}", err=True)
        raise typer.Exit(2) from None


def _note(message: str) -> None:
    typer.echo(message, err=True)


def _print_config(config: GitHubConfig, token_env: str | None) -> None:
    """The config table on stdout (to append to the config file), the rest on stderr."""
    variable = token_env or TOKEN_SECRET
    table: dict[str, str] = {"type": config.type, "owner": config.owner, "repo": config.repo}
    if config.branch:
        table["branch"] = config.branch
    if config.index_filename != DEFAULT_INDEX_FILENAME:
        table["index_filename"] = config.index_filename
    if config.api_url != DEFAULT_API_URL:
        table["api_url"] = config.api_url
    table["token_env"] = variable
    typer.echo("\n" + tomli_w.dumps({config.name: table}), nl=False)  # "\n": safe to append
    admin = tomli_w.dumps({config.name: {"type": config.type, "env": variable}})
    _note(
        "\nAdd the table above to the server's config file, and this one to its admin secret "
        f"file:\n\n{admin}\nThe server reads its GitHub token from ${variable}. The workflow "
        f"reads it from the repository secret {TOKEN_SECRET} (Settings > Secrets and "
        "variables > Actions)."
    )
