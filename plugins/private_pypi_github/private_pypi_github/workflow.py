"""The GitHub Actions workflow that keeps a package repository's index file up to date."""

from __future__ import annotations

import shlex

from private_pypi_github.config import DEFAULT_INDEX_FILENAME, GitHubConfig

WORKFLOW_PATH = ".github/workflows/update-index.yml"
TOKEN_SECRET = "PRIVATE_PYPI_GITHUB_TOKEN"  # the repository secret the workflow reads


def workflow(config: GitHubConfig, *, gh_pages: bool) -> str:
    """The workflow text: on release events (and by hand), ``update_index`` with the published
    core and GitHub plugin, then the Pages site if ``gh_pages``."""
    place = [f"--owner={config.owner}", f"--repo={config.repo}"]
    if config.branch:
        place.append(f"--branch={config.branch}")
    if config.index_filename != DEFAULT_INDEX_FILENAME:
        place.append(f"--index_filename={config.index_filename}")
    # GitHub fills in its own API URL, so the workflow works on GitHub Enterprise Server too.
    place_args = " ".join(shlex.quote(arg) for arg in place) + ' --api_url="${{ github.api_url }}"'
    update = (
        f"private_pypi update_index github {shlex.quote(config.name)} "
        f"--secret_env={TOKEN_SECRET} --token_env={TOKEN_SECRET} {place_args}"
    )
    steps = [
        _step("Install private-pypi", "pip install private-pypi-core private-pypi-github"),
        _step("Update the package index", update),
    ]
    if gh_pages:
        pages = f"private_pypi github.gen_gh_pages --token_env={TOKEN_SECRET} {place_args}"
        steps.append(_step("Publish the index to GitHub Pages", pages))
    return (
        "# Written by `private_pypi github.init_pkg_repo`: rebuilds the package index file when\n"
        f"# releases change. Needs the repository secret {TOKEN_SECRET}: a token that may\n"
        "# write to this repository.\n"
        "name: Update the package index\n"
        "on:\n"
        "  release:\n"
        "    types: [published, edited, deleted]\n"
        "  workflow_dispatch:\n"
        "concurrency:\n"
        "  group: private-pypi-update-index\n"
        "  cancel-in-progress: false\n"
        "jobs:\n"
        "  update-index:\n"
        "    runs-on: ubuntu-latest\n"
        "    env:\n"
        f"      {TOKEN_SECRET}: ${{{{ secrets.{TOKEN_SECRET} }}}}\n"
        "    steps:\n"
        "      - uses: actions/setup-python@v5\n"
        "        with:\n"
        '          python-version: "3.12"\n' + "".join(steps)
    )


def _step(name: str, command: str) -> str:
    return f"      - name: {name}\n        run: |\n          {command}\n"
