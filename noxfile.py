"""Developer tasks: ``nox -s tests``, ``lint``, ``typecheck``, ``container`` and ``bench``."""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["tests", "lint", "typecheck"]

PYPROJECT = nox.project.load_toml("pyproject.toml")
PLUGINS = ["plugins/private_pypi_fs", "plugins/private_pypi_s3", "plugins/private_pypi_github"]
PACKAGES = ["-e", ".", *(arg for plugin in PLUGINS for arg in ("-e", plugin))]
# Plugins written against the public API only, which the tests install and run: the backend
# guide's example, an htpasswd auth provider, a webhook on index changes.
TEST_PLUGINS = [
    *("-e", "docs/example/private_pypi_sqlite"),
    *("-e", "tests/plugins/private_pypi_htpasswd"),
    *("-e", "tests/plugins/private_pypi_webhook"),
]


@nox.session
def tests(session: nox.Session) -> None:
    """The whole test suite: unit, backend conformance and end-to-end with real clients."""
    session.install(*PACKAGES, *TEST_PLUGINS, *nox.project.dependency_groups(PYPROJECT, "test"))
    session.run("pytest", *session.posargs)


@nox.session
def container(session: nox.Session) -> None:
    """Build the Containerfile on a debootstrapped Debian and run it with podman (as root)."""
    # The image holds the project; this side runs the clients, and SeaweedFS (boto3 to look).
    session.install(*nox.project.dependency_groups(PYPROJECT, "test"), "boto3>=1.36")
    session.run("pytest", "tests/container", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install(*nox.project.dependency_groups(PYPROJECT, "lint"))
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    session.install(*PACKAGES, *nox.project.dependency_groups(PYPROJECT, "typecheck"))
    session.run("mypy")


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmark against pypiserver and nginx (when installed): ``nox -s bench -- --help``."""
    session.install(*PACKAGES, "pypiserver==2.4.*", "passlib>=1.7")
    session.run("python", "-m", "bench", *session.posargs)
