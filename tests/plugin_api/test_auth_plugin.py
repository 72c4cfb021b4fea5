"""An auth provider written against the public API only (``tests/plugins/private_pypi_htpasswd``:
users of an htpasswd file) opens a file-system and an S3 repository, unchanged, to real twine
and pip; the stock ``secrets`` provider works beside it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import bcrypt
import pytest
import requests
import tomli_w

from tests.dists import make_wheel
from tests.e2e.clients import client_env, pip_install, report, twine_upload
from tests.s3.conftest import fresh_prefix, seaweed  # noqa: F401 (the fixture)
from tests.s3.seaweed import Seaweed
from tests.server import RunningServer, start_server

USERS = {"alice": "alice-password", "bob": "bob-password", "carol": "carol-password"}
FILES_SECRET = "files-secret-0123456789"


@dataclass
class Site:
    server: RunningServer
    htpasswd: Path


def htpasswd_line(user: str, password: str) -> str:
    return f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()}"


@pytest.fixture(scope="module")
def site(seaweed: Seaweed, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:  # noqa: F811
    folder = tmp_path_factory.mktemp("auth-plugin")
    root = folder / "root"
    root.mkdir()
    htpasswd = root / "users.htpasswd"
    htpasswd.write_text("\n".join(htpasswd_line(u, p) for u, p in USERS.items()) + "\n")
    config = {
        "files": {
            "type": "file_system",
            "auth": ["htpasswd", "secrets"],
            "read_secret": FILES_SECRET,
            "htpasswd": {"path": "users.htpasswd", "writers": ["alice"]},
        },
        "objects": {
            "type": "s3",
            **seaweed.settings(fresh_prefix()),
            "auth": ["htpasswd"],
            "htpasswd": {"path": "users.htpasswd", "writers": ["bob"]},
        },
    }
    (folder / "config.toml").write_text(tomli_w.dumps(config))
    server = start_server(
        root, "--extra_index_url=", "--workers=2", "--config", str(folder / "config.toml")
    )
    yield Site(server, htpasswd)
    server.stop()


def index_url(site: Site, username: str, password: str) -> str:
    credentials = f"{quote(username, safe='')}:{quote(password, safe='')}"
    return f"http://{credentials}@127.0.0.1:{site.server.port}/simple/"


@pytest.mark.parametrize(
    ("repository", "writer"),
    [("files", "alice"), ("objects", "bob@objects")],
    ids=["file_system", "s3"],
)
def test_users_of_the_file_upload_with_twine_and_install_with_pip(
    site: Site, tmp_path: Path, repository: str, writer: str
) -> None:
    env = client_env(tmp_path)
    project = f"{repository}-pkg"
    wheel = make_wheel(tmp_path / "dist", project, "1.0")
    password = USERS[writer.partition("@")[0]]
    uploaded = twine_upload(site.server, [wheel], password, env, username=writer)
    assert uploaded.returncode == 0, report(uploaded)
    # carol may read either repository, named as user@repository.
    reader = index_url(site, f"carol@{repository}", USERS["carol"])
    installed = pip_install(tmp_path / "target", reader, env, project)
    assert installed.returncode == 0, report(installed)
    assert any((tmp_path / "target").glob(f"{project.replace('-', '_')}-1.0.dist-info"))


def test_a_user_without_the_right_is_refused(site: Site, tmp_path: Path) -> None:
    env = client_env(tmp_path)
    wheel = make_wheel(tmp_path / "dist", "sneaky-pkg", "1.0")
    as_reader = twine_upload(site.server, [wheel], USERS["carol"], env, username="carol@files")
    assert as_reader.returncode != 0
    assert "403" in as_reader.stdout + as_reader.stderr
    wrong = requests.get(site.server.simple_url, auth=("alice", "guess"), timeout=10)
    assert wrong.status_code == 401
    assert requests.get(site.server.simple_url, auth=("mallory", "x"), timeout=10).text == (
        wrong.text
    )


def test_a_plain_username_opens_the_first_repository_that_knows_it(site: Site) -> None:
    listing = requests.get(
        site.server.simple_url,
        auth=("alice", USERS["alice"]),
        headers={"Accept": "application/vnd.pypi.simple.v1+json"},
        timeout=10,
    )
    assert listing.status_code == 200
    assert {p["name"] for p in listing.json()["projects"]} <= {"files-pkg"}


def test_the_repository_secret_still_opens_its_repository(site: Site) -> None:
    listing = requests.get(site.server.simple_url, auth=("files", FILES_SECRET), timeout=10)
    assert listing.status_code == 200


def test_a_user_removed_from_the_file_is_refused_once_the_cache_forgets(
    site: Site, tmp_path: Path
) -> None:
    """The provider reads the file again when it changes; a fresh credential is asked anew."""
    lines = site.htpasswd.read_text().splitlines()
    dave = htpasswd_line("dave", "dave-password")
    site.htpasswd.write_text("\n".join([*lines, dave]) + "\n")
    assert requests.get(site.server.simple_url, auth=("dave", "dave-password"), timeout=10).ok
    site.htpasswd.write_text("\n".join(lines) + "\n")
    assert requests.get(site.server.simple_url, auth=("dave", "x"), timeout=10).status_code == 401
