"""Developer tasks: ``nox -s tests``, ``nox -s lint``, ``nox -s typecheck``, ``nox -s bench``."""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["tests", "lint", "typecheck"]

PYPROJECT = nox.project.load_toml("pyproject.toml")
PLUGINS = ["plugins/private_pypi_fs", "plugins/private_pypi_s3", "plugins/private_pypi_github"]
PACKAGES = ["-e", ".", *(arg for plugin in PLUGINS for arg in ("-e", plugin))]


@nox.session
def tests(session: nox.Session) -> None:
    """The whole test suite: unit, backend conformance and end-to-end with real clients."""
    session.install(*PACKAGES, *nox.project.dependency_groups(PYPROJECT, "test"))
    session.run("pytest", *session.posargs)


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
