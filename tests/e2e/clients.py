"""Running the real packaging clients (twine, uv, poetry, pip) against a test server.

Every client runs from the test interpreter's environment, with this machine's own
pip/uv/poetry/twine settings removed, its config and cache in a temp dir, and no prompts.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import requests

from tests.server import RunningServer

BIN = Path(sys.executable).parent
COMMAND_TIMEOUT = 180
NETWORK_TIMEOUT = "10"
CLIENT_ENV_PREFIXES = ("PIP_", "UV_", "POETRY_", "TWINE_")
CLIENT_ENV_NAMES = ("NETRC", "PYTHONPATH", "VIRTUAL_ENV", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


def executable(name: str) -> str:
    """The ``name`` script installed next to the test interpreter."""
    path = BIN / name
    assert path.exists(), f"{name} is not installed in {BIN}"
    return str(path)


def pip_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "pip", *args]


def client_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """An environment for the clients: isolated from this machine's settings, never prompting."""
    state = tmp_path / "client-state"
    home = state / "home"
    home.mkdir(parents=True, exist_ok=True)
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.upper().startswith(CLIENT_ENV_PREFIXES) and name.upper() not in CLIENT_ENV_NAMES
    }
    env.update(
        HOME=str(home),
        NO_PROXY="127.0.0.1,localhost",
        # requests (pip, twine, poetry) and uv read the file NETRC names: none by default.
        NETRC=str(state / "no-netrc"),
        PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring",
        PIP_CONFIG_FILE=os.devnull,
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_NO_INPUT="1",
        UV_CACHE_DIR=str(state / "uv-cache"),
        UV_NO_CONFIG="1",
        UV_PYTHON_DOWNLOADS="never",
        UV_HTTP_TIMEOUT=NETWORK_TIMEOUT,
        UV_HTTP_RETRIES="0",
        UV_KEYRING_PROVIDER="disabled",
        POETRY_CONFIG_DIR=str(state / "poetry-config"),
        POETRY_CACHE_DIR=str(state / "poetry-cache"),
        POETRY_DATA_DIR=str(state / "poetry-data"),
        POETRY_KEYRING_ENABLED="false",
        POETRY_REQUESTS_TIMEOUT=NETWORK_TIMEOUT,
        POETRY_VIRTUALENVS_IN_PROJECT="true",
        POETRY_VIRTUALENVS_USE_POETRY_PYTHON="true",
        POETRY_NO_INTERACTION="1",
    )
    env.update(extra)
    return env


def run(
    args: Sequence[str], env: dict[str, str], cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a client to completion, never reading stdin."""
    return subprocess.run(
        list(args),
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )


def report(result: subprocess.CompletedProcess[str]) -> str:
    """The command, exit code and output, for assertion messages."""
    return (
        f"$ {' '.join(map(str, result.args))}\nexit code {result.returncode}\n"
        f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    )


def output(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class Link:
    """One file link of a project page."""

    filename: str
    sha256: str | None
    requires_python: str | None


class _LinkParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: dict[str, Link] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "a":
            return
        attributes = dict(attrs)
        href = attributes.get("href") or ""
        path, _, fragment = href.partition("#")
        filename = unquote(path.rsplit("/", 1)[-1])
        sha256 = fragment.removeprefix("sha256=") if fragment.startswith("sha256=") else None
        self.links[filename] = Link(filename, sha256, attributes.get("data-requires-python"))


def project_links(server: RunningServer, project: str) -> dict[str, Link]:
    """The files ``GET /simple/<project>/`` lists (with the read secret); none if it is a 404."""
    response = requests.get(
        f"{server.simple_url}{project}/", auth=("local", server.secret("local", "read")), timeout=10
    )
    if response.status_code == 404:
        return {}
    assert response.status_code == 200, f"{response.status_code}: {response.text}"
    parser = _LinkParser()
    parser.feed(response.text)
    return parser.links


def download(server: RunningServer, project: str, filename: str) -> bytes:
    """The stored bytes of ``filename``, fetched with the read secret."""
    response = requests.get(
        f"{server.simple_url}{project}/{filename}",
        auth=("local", server.secret("local", "read")),
        timeout=10,
    )
    assert response.status_code == 200, f"{response.status_code}: {response.text}"
    return response.content


def assert_listed(server: RunningServer, project: str, files: Iterable[Path]) -> None:
    """Each of ``files`` is on the project page with its own sha256."""
    links = project_links(server, project)
    for path in files:
        assert path.name in links, f"{path.name} not listed for {project}: {sorted(links)}"
        assert links[path.name].sha256 == sha256_of(path), links[path.name]


def publish_with_requests(
    server: RunningServer, path: Path, name: str, version: str
) -> requests.Response:
    """A legacy-API upload of ``path`` with the write secret, which must succeed."""
    auth = ("local", server.secret("local", "write"))
    response = legacy_upload(server, path, name=name, version=version, auth=auth, timeout=30)
    assert response.status_code == 200, f"{response.status_code}: {response.text}"
    return response


def secret_for(server: RunningServer, credential: str) -> str | None:
    """The password for a credential kind: ``read``, ``write``, ``wrong`` or ``none``."""
    if credential == "none":
        return None
    if credential == "wrong":
        return "not-the-secret-" + server.secret("local", "read")[:8]
    return server.secret("local", credential)


def twine_upload(
    server: RunningServer,
    files: Sequence[Path],
    password: str | None,
    env: dict[str, str],
    *extra: str,
    repository_url: str | None = None,
    username: str = "local",
) -> subprocess.CompletedProcess[str]:
    """``twine upload`` to ``repository_url`` (by default ``/simple/``) as ``username``."""
    credentials = [] if password is None else [f"--username={username}", f"--password={password}"]
    return run(
        [
            executable("twine"),
            "upload",
            "--non-interactive",
            "--disable-progress-bar",
            "--repository-url",
            repository_url or server.simple_url,
            *credentials,
            *extra,
            *map(str, files),
        ],
        env,
    )


def uv_publish(
    server: RunningServer,
    files: Sequence[Path],
    password: str | None,
    env: dict[str, str],
    *extra: str,
    username: str = "local",
) -> subprocess.CompletedProcess[str]:
    credentials = [] if password is None else [f"--username={username}", f"--password={password}"]
    return run(
        [
            executable("uv"),
            "publish",
            "--no-config",
            "--no-progress",
            "--trusted-publishing",
            "never",
            "--publish-url",
            server.simple_url,
            *credentials,
            *extra,
            *map(str, files),
        ],
        env,
    )


def poetry_publish(
    server: RunningServer,
    files: Sequence[Path],
    password: str | None,
    env: dict[str, str],
    project_dir: Path,
) -> subprocess.CompletedProcess[str]:
    """``poetry publish`` of ``files`` (already built) from a minimal project in ``project_dir``.

    The repository is ``private``, configured through environment variables only.
    """
    names = {path.name.split("-")[0] for path in files}
    versions = {path.name.removesuffix(".tar.gz").split("-")[1] for path in files}
    assert len(names) == 1 and len(versions) == 1, files
    dist = project_dir / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    dist.mkdir(parents=True)
    for path in files:
        shutil.copy2(path, dist / path.name)
    (project_dir / "pyproject.toml").write_text(
        f'[project]\nname = "{names.pop()}"\nversion = "{versions.pop()}"\n'
    )
    poetry_env = {**env, "POETRY_REPOSITORIES_PRIVATE_URL": server.simple_url}
    if password is not None:
        poetry_env["POETRY_HTTP_BASIC_PRIVATE_USERNAME"] = "local"
        poetry_env["POETRY_HTTP_BASIC_PRIVATE_PASSWORD"] = password
    return run(
        [
            executable("poetry"),
            "publish",
            "--repository",
            "private",
            "--dist-dir",
            str(dist),
            "--no-interaction",
            "--no-ansi",
        ],
        poetry_env,
        cwd=project_dir,
    )


PIP_FLAGS = ("--no-input", "--no-cache-dir", "--timeout", NETWORK_TIMEOUT, "--retries", "0")


def pip_install(
    target: Path, index_url: str, env: dict[str, str], *requirements: str
) -> subprocess.CompletedProcess[str]:
    """``pip install --target`` from ``index_url``, never prompting or retrying."""
    return run(
        pip_command(
            "install", *PIP_FLAGS, "--target", str(target), "--index-url", index_url, *requirements
        ),
        env,
    )


def uv_pip_install(
    target: Path, index_url: str, env: dict[str, str], *requirements: str
) -> subprocess.CompletedProcess[str]:
    """``uv pip install --target`` from ``index_url``, for this interpreter, no user config."""
    return run(
        [
            executable("uv"),
            "pip",
            "install",
            "--no-config",
            "--no-progress",
            "--python",
            sys.executable,
            "--target",
            str(target),
            "--index-url",
            index_url,
            *requirements,
        ],
        env,
    )


def legacy_upload(
    server: RunningServer,
    path: Path,
    *,
    name: str,
    version: str,
    auth: tuple[str, str],
    timeout: float = 60,
) -> requests.Response:
    """A legacy-API upload of ``path``, as twine sends it."""
    filetype = "bdist_wheel" if path.name.endswith(".whl") else "sdist"
    return requests.post(
        server.simple_url,
        auth=auth,
        data={
            ":action": "file_upload",
            "protocol_version": "1",
            "name": name,
            "version": version,
            "filetype": filetype,
            "sha256_digest": sha256_of(path),
        },
        files={"content": (path.name, path.read_bytes(), "application/octet-stream")},
        timeout=timeout,
    )
