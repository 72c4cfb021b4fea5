"""Installs from the server with the real pip, ``uv pip`` and poetry."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.dists import make_sdist, make_wheel
from tests.e2e.clients import (
    PIP_FLAGS,
    client_env,
    executable,
    output,
    pip_command,
    pip_install,
    project_links,
    publish_with_requests,
    report,
    run,
    secret_for,
    sha256_of,
    twine_upload,
    uv_pip_install,
)
from tests.server import RunningServer

pytestmark = pytest.mark.e2e

REFUSED = pytest.mark.parametrize("credential", ["wrong", "none"])


def _index_url(server: RunningServer, credential: str) -> str:
    """The simple index URL carrying ``credential`` (``read``, ``write``, ``wrong``, ``none``)."""
    secret = secret_for(server, credential)
    if secret is None:
        return server.simple_url
    return f"http://local:{secret}@127.0.0.1:{server.port}/simple/"


def _publish(server: RunningServer, directory: Path, project: str, *versions: str) -> list[Path]:
    """Wheels of ``project`` at ``versions`` (plus the first one's sdist), published."""
    files = [make_wheel(directory, project, version) for version in versions]
    files.append(make_sdist(directory, project, versions[0]))
    for path, version in zip(files, [*versions, versions[0]], strict=True):
        publish_with_requests(server, path, project, version)
    return files


def _module(project: str) -> str:
    return project.replace("-", "_")


def _imported_version(target: Path, project: str, env: dict[str, str]) -> str:
    """``VERSION`` of the module imported from ``target`` alone (checked by its ``__file__``)."""
    module = _module(project)
    code = (
        f"import sys; sys.path.insert(0, {str(target)!r}); import {module}; "
        f"assert {module}.__file__.startswith({str(target)!r}), {module}.__file__; "
        f"print({module}.VERSION)"
    )
    result = run([sys.executable, "-I", "-c", code], env)
    assert result.returncode == 0, report(result)
    return result.stdout.strip()


INSTALLERS = pytest.mark.parametrize("installer", ["pip", "uv"])


def _install(
    installer: str, target: Path, index_url: str, env: dict[str, str], project: str
) -> subprocess.CompletedProcess[str]:
    install = pip_install if installer == "pip" else uv_pip_install
    return install(target, index_url, env, project)


@INSTALLERS
def test_install_with_credentials_in_the_index_url_installs_the_newest_version(
    server: RunningServer, tmp_path: Path, installer: str
) -> None:
    """``pip install`` / ``uv pip install --index-url http://local:<read>@.../simple/``
    installs a working package, the newest version."""
    project = f"{installer}-url-credentials"
    _publish(server, tmp_path / "dist", project, "1.0", "1.1")
    env = client_env(tmp_path)
    target = tmp_path / "target"
    result = _install(installer, target, _index_url(server, "read"), env, project)
    assert result.returncode == 0, report(result)
    assert _imported_version(target, project, env) == "1.1"


@INSTALLERS
def test_install_with_credentials_in_a_netrc_file_installs_the_package(
    server: RunningServer, tmp_path: Path, installer: str
) -> None:
    """A bare index URL works when the netrc file named by NETRC holds the read secret."""
    project = f"{installer}-netrc-credentials"
    _publish(server, tmp_path / "dist", project, "2.0")
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine 127.0.0.1 login local password {server.secret('local', 'read')}\n")
    netrc.chmod(0o600)
    env = client_env(tmp_path, NETRC=str(netrc))
    target = tmp_path / "target"
    result = _install(installer, target, server.simple_url, env, project)
    assert result.returncode == 0, report(result)
    assert _imported_version(target, project, env) == "2.0"


@INSTALLERS
@REFUSED
def test_install_without_a_valid_credential_fails(
    server: RunningServer, tmp_path: Path, credential: str, installer: str
) -> None:
    """A wrong secret or no credential: the installer exits non-zero and installs nothing;
    pip shows the 401 for a wrong secret (without one it finds nothing), uv always."""
    project = f"{installer}-refused-{credential}"
    _publish(server, tmp_path / "dist", project, "1.0")
    env = client_env(tmp_path)
    target = tmp_path / "target"
    result = _install(installer, target, _index_url(server, credential), env, project)
    assert result.returncode != 0, report(result)
    assert not (target / _module(project)).exists(), report(result)
    if credential == "wrong" or installer == "uv":
        assert "401" in output(result), report(result)


def test_pip_download_saves_the_published_file_byte_for_byte(
    server: RunningServer, tmp_path: Path
) -> None:
    """``pip download --no-deps`` fetches the wheel exactly as it was uploaded."""
    project = "pip-download"
    wheel = _publish(server, tmp_path / "dist", project, "3.0")[0]
    env = client_env(tmp_path)
    downloads = tmp_path / "downloads"
    result = run(
        pip_command(
            "download",
            *PIP_FLAGS,
            "--no-deps",
            "--dest",
            str(downloads),
            "--index-url",
            _index_url(server, "read"),
            project,
        ),
        env,
    )
    assert result.returncode == 0, report(result)
    saved = downloads / wheel.name
    assert saved.exists(), report(result)
    assert sha256_of(saved) == sha256_of(wheel)


def test_pip_index_versions_lists_the_published_versions(
    server: RunningServer, tmp_path: Path
) -> None:
    """``pip index versions`` shows every published version, newest first."""
    project = "pip-index-versions"
    _publish(server, tmp_path / "dist", project, "1.0", "1.2", "1.10")
    env = client_env(tmp_path)
    result = run(
        pip_command(
            "index", "versions", *PIP_FLAGS, "--index-url", _index_url(server, "read"), project
        ),
        env,
    )
    assert result.returncode == 0, report(result)
    assert f"{project} (1.10)" in result.stdout, report(result)
    assert "Available versions: 1.10, 1.2, 1.0" in result.stdout, report(result)


def _poetry_consumer(directory: Path, server: RunningServer, project: str, version: str) -> Path:
    """A poetry project (non-package mode) depending on ``project`` from the ``private`` source."""
    directory.mkdir(parents=True)
    (directory / "pyproject.toml").write_text(
        "[project]\n"
        'name = "consumer"\n'
        'version = "0.1.0"\n'
        f'requires-python = ">={sys.version_info.major}.{sys.version_info.minor}"\n'
        f'dependencies = ["{project}=={version}"]\n'
        "\n"
        "[tool.poetry]\n"
        "package-mode = false\n"
        "\n"
        "[[tool.poetry.source]]\n"
        'name = "private"\n'
        f'url = "{server.simple_url}"\n'
        'priority = "primary"\n'
    )
    return directory


def _poetry_install(directory: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run(
        [executable("poetry"), "install", "--no-root", "--no-interaction", "--no-ansi"],
        env,
        cwd=directory,
    )


def _poetry_credentials(secret: str | None) -> dict[str, str]:
    if secret is None:
        return {}
    return {
        "POETRY_HTTP_BASIC_PRIVATE_USERNAME": "local",
        "POETRY_HTTP_BASIC_PRIVATE_PASSWORD": secret,
    }


def test_poetry_install_from_the_private_source_gives_an_importable_package(
    server: RunningServer, tmp_path: Path
) -> None:
    """``poetry install`` resolves, locks (with the index's hashes) and installs the package."""
    project = "poetry-consumed"
    files = _publish(server, tmp_path / "dist", project, "1.0", "1.1")
    consumer = _poetry_consumer(tmp_path / "consumer", server, project, "1.0")
    env = client_env(tmp_path, **_poetry_credentials(server.secret("local", "read")))
    result = _poetry_install(consumer, env)
    assert result.returncode == 0, report(result)
    venv_python = consumer / ".venv" / "bin" / "python"
    assert venv_python.exists(), report(result)
    module = _module(project)
    imported = run([str(venv_python), "-c", f"import {module}; print({module}.VERSION)"], env)
    assert imported.returncode == 0, report(imported)
    assert imported.stdout.strip() == "1.0"
    lock = (consumer / "poetry.lock").read_text()
    assert f"sha256:{sha256_of(files[0])}" in lock
    assert f"sha256:{sha256_of(files[1])}" not in lock  # 1.1 is not the pinned version


def test_poetry_install_without_a_valid_credential_fails(
    server: RunningServer, tmp_path: Path
) -> None:
    """A wrong secret and then no credential: poetry fails and creates no lock file."""
    project = "poetry-refused"
    _publish(server, tmp_path / "dist", project, "1.0")
    for credential in ("wrong", "none"):
        consumer = _poetry_consumer(tmp_path / f"consumer-{credential}", server, project, "1.0")
        env = client_env(
            tmp_path / credential, **_poetry_credentials(secret_for(server, credential))
        )
        result = _poetry_install(consumer, env)
        assert result.returncode != 0, report(result)
        assert not (consumer / "poetry.lock").exists(), report(result)
        assert "Authorization error" in output(result) or "401" in output(result), report(result)


def test_pip_installs_the_newest_version_whose_requires_python_allows_this_python(
    server: RunningServer, tmp_path: Path
) -> None:
    """twine sends Requires-Python from the wheel METADATA; pip then skips 2.0 (>=4) for 1.0."""
    project = "future-only"
    old = make_wheel(tmp_path / "dist", project, "1.0")
    new = make_wheel(tmp_path / "dist", project, "2.0", requires_python=">=4")
    env = client_env(tmp_path)
    uploaded = twine_upload(server, [old, new], server.secret("local", "write"), env)
    assert uploaded.returncode == 0, report(uploaded)
    links = project_links(server, project)
    assert links[new.name].requires_python == ">=4"
    assert links[old.name].requires_python is None
    target = tmp_path / "target"
    result = pip_install(target, _index_url(server, "read"), env, project)
    assert result.returncode == 0, report(result)
    assert _imported_version(target, project, env) == "1.0"


def test_uv_pip_installs_the_newest_version_whose_requires_python_allows_this_python(
    server: RunningServer, tmp_path: Path
) -> None:
    """uv also honours the data-requires-python the twine upload recorded."""
    project = "future-only-uv"
    old = make_wheel(tmp_path / "dist", project, "1.0")
    new = make_wheel(tmp_path / "dist", project, "2.0", requires_python=">=4")
    env = client_env(tmp_path)
    uploaded = twine_upload(server, [old, new], server.secret("local", "write"), env)
    assert uploaded.returncode == 0, report(uploaded)
    target = tmp_path / "target"
    result = uv_pip_install(target, _index_url(server, "read"), env, project)
    assert result.returncode == 0, report(result)
    assert _imported_version(target, project, env) == "1.0"


def test_installers_find_a_project_by_its_unnormalized_name_and_a_local_version(
    server: RunningServer, tmp_path: Path
) -> None:
    """Uploaded by twine as ``Mixed_Case.Name`` and ``1.0+build.7``; pip and uv install both."""
    wheels = [
        make_wheel(tmp_path / "dist", "Mixed_Case.Name", "1.0"),
        make_wheel(tmp_path / "dist", "local-versioned", "1.0+build.7"),
    ]
    env = client_env(tmp_path)
    uploaded = twine_upload(server, wheels, server.secret("local", "write"), env)
    assert uploaded.returncode == 0, report(uploaded)
    requirements = ["Mixed_Case.Name", "local-versioned==1.0+build.7"]
    index_url = _index_url(server, "read")
    pip_target, uv_target = tmp_path / "pip-target", tmp_path / "uv-target"
    installs = [
        pip_install(pip_target, index_url, env, *requirements),
        uv_pip_install(uv_target, index_url, env, *requirements),
    ]
    for result in installs:
        assert result.returncode == 0, report(result)
    for target in (pip_target, uv_target):
        assert _imported_version(target, "mixed-case-name", env) == "1.0"
        assert _imported_version(target, "local-versioned", env) == "1.0+build.7"
