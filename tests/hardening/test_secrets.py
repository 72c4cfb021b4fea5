"""Secrets against a real server started with --debug and an access log: errors of every
kind (wrong secrets, bad uploads, bad /initialize/ posts, a store that fails) never put a
repository secret, the admin secret or the session key in the log or in an answer; config
objects hide them in repr(); secret files are 0600; hashed secrets open a repository and the
hash itself does not."""

from __future__ import annotations

import base64
import os
import re
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
import tomli_w

from private_pypi_core.auth import AuthCache
from private_pypi_core.auth_provider import Credential, Grant
from private_pypi_core.backend import Access
from private_pypi_core.config import load_admin_secrets, load_repositories, read_toml
from private_pypi_core.state import ServerSettings, load_configuration
from tests.hardening.support import (
    ServerSpec,
    auth,
    fs_table,
    multipart,
    new_secret,
    post_upload,
    sha256_hex,
    storage_dir,
    upload_body,
    wheel_bytes,
    wheel_name,
)
from tests.server import RunningServer, private_pypi_command, start_server

HASHED_READ, HASHED_WRITE = new_secret("hashed-read"), new_secret("hashed-write")


@dataclass
class Exercised:
    """A --debug server after every kind of error, and everything it answered."""

    spec: ServerSpec
    server: RunningServer
    answers: dict[str, requests.Response] = field(default_factory=dict)

    def secrets(self) -> dict[str, str]:
        """Every secret that must never show, by label."""
        found = {
            f"{name} {key}": str(value)
            for name, table in self.spec.tables.items()
            for key, value in table.items()
            if key in {"read_secret", "write_secret"}
        }
        found.update({f"{name} admin": secret for name, secret in self.spec.admin.items()})
        found.update({"hashed read (plain)": HASHED_READ, "hashed write (plain)": HASHED_WRITE})
        key = (self.server.root / "session.key").read_bytes()
        found.update(
            {
                "session key (hex)": key.hex(),
                "session key (base64)": base64.b64encode(key).decode().rstrip("="),
                "session key (urlsafe)": base64.urlsafe_b64encode(key).decode().rstrip("="),
                "session key (repr)": repr(key)[2:-1],
            }
        )
        return found


@pytest.fixture(scope="module")
def exercised(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exercised]:
    spec = ServerSpec(
        tmp_path_factory.mktemp("secrets") / "root",
        {
            "plain": fs_table("plain"),
            "hashed": {
                "type": "file_system",
                "read_secret_sha256": sha256_hex(HASHED_READ),
                "write_secret_sha256": sha256_hex(HASHED_WRITE).upper(),
            },
        },
        ("--workers=2", "--debug", "--accesslog=-"),
        admin={"plain": new_secret("plain-admin")},
    )
    server = spec.start()
    done = Exercised(spec, server)
    try:
        exercise(done)
        yield done
    finally:
        server.stop()


def exercise(done: Exercised) -> None:
    server, spec, answers = done.server, done.spec, done.answers
    url = server.url
    plain_read, plain_write = spec.secret("plain", "read"), spec.secret("plain", "write")
    data = wheel_bytes("demo-pkg", "1.0")
    filename = wheel_name("demo-pkg", "1.0")

    def get(label: str, path: str, headers: dict[str, str]) -> None:
        answers[label] = requests.get(url + path, headers=headers, timeout=15)

    # Wrong and near-miss secrets, for every repository, enough to trigger the throttle's log.
    for i in range(7):
        get(f"wrong plain {i}", "/simple/", auth("plain", plain_read[:-1] + "x"))
    get("wrong hashed", "/simple/", auth("hashed", HASHED_READ + "x"))
    get("hash as secret (read)", "/simple/", auth("hashed", sha256_hex(HASHED_READ)))
    get("hash as secret (write)", "/simple/", auth("hashed", sha256_hex(HASHED_WRITE)))
    get("unknown repository", "/simple/", auth("nobody", plain_read))
    get("hashed read", "/simple/", auth("hashed", HASHED_READ))
    get("read secret on write", "/simple/", auth("plain", plain_read))
    # Uploads: accepted, refused, and with the wrong kind of secret.
    body = upload_body(filename, data, name="demo-pkg", version="1.0")
    answers["hashed upload"] = post_upload(server, body, auth("hashed", HASHED_WRITE))
    answers["upload with the write hash"] = post_upload(
        server, body, auth("hashed", sha256_hex(HASHED_WRITE))
    )
    answers["upload with a read secret"] = post_upload(server, body, auth("plain", plain_read))
    answers["plain upload"] = post_upload(server, body, auth("plain", plain_write))
    for label, bad in {
        "bad filename": upload_body("../x.whl", data, name="demo-pkg", version="1.0"),
        "bad digest": upload_body(
            wheel_name("demo-pkg", "2.0"),
            wheel_bytes("demo-pkg", "2.0"),
            name="demo-pkg",
            version="2.0",
            sha256_digest="0" * 64,
        ),
        "corrupt wheel": upload_body(
            wheel_name("demo-pkg", "3.0"), b"PK junk", name="demo-pkg", version="3.0"
        ),
        "no content": multipart([(":action", "file_upload"), ("secret", plain_write)]),
        "nul filename": upload_body(
            "demo_pkg-4.0-py3-none-any\x00.whl",
            wheel_bytes("demo-pkg", "4.0"),
            name="demo-pkg",
            version="4.0",
        ),
    }.items():
        answers[label] = post_upload(server, bad, auth("plain", plain_write))
    answers["not multipart"] = post_upload(
        server,
        b"secret=" + plain_write.encode(),
        auth("plain", plain_write),
        content_type="text/plain",
    )
    # Login: wrong secret, then right.
    form = requests.get(f"{url}/login/", timeout=15)
    token = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert token is not None
    cookies = {"private_pypi_login_csrf": form.cookies["private_pypi_login_csrf"]}
    for label, secret in [("login wrong", plain_read + "x"), ("login right", plain_read)]:
        answers[label] = requests.post(
            f"{url}/login/",
            data={"csrf": token.group(1), "repository": "plain", "secret": secret},
            cookies=cookies,
            allow_redirects=False,
            timeout=15,
        )
    # /initialize/ with a wrong admin secret, then with the right one and broken documents
    # that carry secrets (nothing is changed: every one of them is refused).
    admin = auth("plain", spec.admin["plain"])
    good_admin = tomli_w.dumps({"plain": {"type": "file_system", "raw": spec.admin["plain"]}})
    for label, headers, config in [
        ("initialize wrong admin", auth("plain", plain_write), tomli_w.dumps(spec.tables)),
        (
            "initialize broken toml",
            admin,
            f'[plain]\ntype = "file_system"\nread_secret = {plain_read}\n',
        ),
        (
            "initialize secret of wrong type",
            admin,
            f'[plain]\ntype = "file_system"\nread_secret = ["{plain_read}"]\n'
            f'write_secret = "{plain_write}"\n',
        ),
        (
            "initialize unknown key",
            admin,
            f'[plain]\ntype = "file_system"\nread_secret = "{plain_read}"\n'
            f'wirte_secret = "{plain_write}"\n',
        ),
    ]:
        answers[label] = requests.post(
            f"{url}/initialize/",
            data={"config": config, "admin_secret": good_admin},
            headers=headers,
            timeout=15,
        )
    # The store fails: the storage folder is replaced by a file (chmod cannot stop root).
    storage = storage_dir(server.root, "plain")
    away = storage.with_name("storage.away")
    storage.rename(away)
    storage.write_text("not a folder")
    try:
        answers["upload to a failing store"] = post_upload(
            server,
            upload_body(
                wheel_name("demo-pkg", "5.0"),
                wheel_bytes("demo-pkg", "5.0"),
                name="demo-pkg",
                version="5.0",
            ),
            auth("plain", plain_write),
        )
        get(
            "download from a failing store",
            f"/simple/demo-pkg/{filename}",
            auth("plain", plain_read),
        )
        get(
            "metadata from a failing store",
            f"/simple/demo-pkg/{filename}.metadata",
            auth("plain", plain_read),
        )
    finally:
        storage.unlink()
        away.rename(storage)


def test_every_error_is_answered_with_a_readable_message(exercised: Exercised) -> None:
    expected = {
        "wrong plain 0": (401, "Wrong package repository name or secret"),
        "wrong plain 6": (401, "Wrong package repository name or secret"),
        "hash as secret (read)": (401, "Wrong package repository name or secret"),
        "unknown repository": (401, "Wrong package repository name or secret"),
        "upload with a read secret": (403, "to upload it needs a write secret"),
        "bad filename": (400, "invalid filename"),
        "bad digest": (400, "sha256_digest sent does not match"),
        "corrupt wheel": (400, "not a valid archive"),
        "no content": (400, "no 'content' field"),
        "not multipart": (400, "multipart/form-data"),
        "login wrong": (401, "Wrong package repository name or secret"),
        "initialize wrong admin": (401, "admin credential"),
        "initialize broken toml": (400, "not valid TOML"),
        "initialize secret of wrong type": (400, "key 'read_secret' must be a string"),
        "initialize unknown key": (400, "unknown key 'wirte_secret'"),
        "upload to a failing store": (503, "unavailable right now; try again later"),
        "download from a failing store": (503, "unavailable right now; try again later"),
        "metadata from a failing store": (503, "unavailable right now; try again later"),
    }
    for label, (status, message) in expected.items():
        answer = exercised.answers[label]
        assert answer.status_code == status, (label, answer.status_code, answer.text)
        assert message in answer.text, (label, answer.text)
        assert "Traceback" not in answer.text, (label, answer.text)
    assert exercised.answers["download from a failing store"].headers["Retry-After"] == "30"


def test_no_secret_in_the_server_log(exercised: Exercised) -> None:
    log = exercised.server.log()
    assert "[DEBUG]" in log or " DEBUG " in log, "the server did not log at debug level"
    assert "repeated auth failures" in log, "the throttle was not triggered"
    assert "store unavailable" in log, "the failing store was not logged"
    assert "POST /login/ HTTP/1.1" in log, "no access log"
    leaked = [label for label, secret in exercised.secrets().items() if secret in log]
    assert not leaked, f"in the --debug log: {leaked}"


def test_no_secret_in_any_answer(exercised: Exercised) -> None:
    secrets = exercised.secrets()
    for label, answer in exercised.answers.items():
        headers = "\n".join(f"{k}: {v}" for k, v in answer.headers.items())
        text = answer.content.decode("utf-8", errors="replace") + headers
        leaked = [name for name, secret in secrets.items() if secret in text]
        assert not leaked, f"{label}: the answer shows {leaked}"


def test_hashed_secrets_open_the_repository_and_the_hash_itself_does_not(
    exercised: Exercised,
) -> None:
    answers = exercised.answers
    assert answers["hashed read"].status_code == 200
    assert answers["hashed upload"].status_code == 200, answers["hashed upload"].text
    assert answers["hash as secret (read)"].status_code == 401
    assert answers["hash as secret (write)"].status_code == 401
    assert answers["upload with the write hash"].status_code == 401
    # The config on disk holds no secret, only hashes.
    config_text = exercised.spec.config_path.read_text()
    assert HASHED_READ not in config_text and HASHED_WRITE not in config_text
    assert sha256_hex(HASHED_READ) in config_text


def test_repr_of_settings_and_config_objects_hides_secrets(
    exercised: Exercised, tmp_path: Path
) -> None:
    spec = exercised.spec
    config_text = spec.config_path.read_text()
    admin_text = spec.admin_path.read_text()
    settings = ServerSettings(
        root=tmp_path / "root",
        config=config_text,
        admin_secret=admin_text,
        config_or_admin_secret_can_be_text=True,
    )
    configuration = load_configuration(settings)
    objects: list[object] = [
        settings,
        configuration,
        configuration.admin_secrets,
        *configuration.admin_secrets.values(),
        *(repository.config for repository in configuration.repositories.values()),
        *configuration.repositories.values(),
        *(repository.backend for repository in configuration.repositories.values()),
        load_repositories(read_toml(str(spec.config_path), what="config")),
        load_admin_secrets(read_toml(str(spec.admin_path), what="admin secret")),
        Credential("plain", spec.secret("plain", "write")),
    ]
    cache = AuthCache(60, 60)
    grant = Grant(access=Access.READ, identity="secrets: plain")
    cache.put(Credential("plain", spec.secret("plain", "read")), "plain", grant)
    objects.append(cache.__dict__)
    secrets = {k: v for k, v in exercised.secrets().items() if not k.startswith("session key")}
    for thing in objects:
        shown = repr(thing) + str(thing)
        leaked = [label for label, secret in secrets.items() if secret in shown]
        assert not leaked, f"repr of {type(thing).__name__} shows {leaked}: {shown[:300]}"


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_secret_files_are_written_0600(tmp_path: Path, exercised: Exercised) -> None:
    assert mode(exercised.server.root / "session.key") == 0o600
    server = start_server(tmp_path / "root", "--extra_index_url=", "--workers=2")
    try:
        config, admin = (
            '[team]\ntype = "file_system"\nread_secret = "r-team"\nwrite_secret = "w-team"\n',
            '[team]\ntype = "file_system"\nraw = "w-team"\n',
        )
        response = requests.post(
            f"{server.url}/initialize/", data={"config": config, "admin_secret": admin}, timeout=15
        )
        assert response.status_code == 200, response.text
        root = server.root
        files = [
            root / "session.key",
            root / "embedded" / "config.toml",
            root / "embedded" / "admin_secret.toml",
            root / "initialized" / "config.toml",
            root / "initialized" / "admin_secret.toml",
        ]
        wrong = {str(path): oct(mode(path)) for path in files if mode(path) != 0o600}
        assert not wrong, f"secret files not 0600: {wrong}"
    finally:
        server.stop()
    # fs.init_pkg_repo writes the secrets it generates 0600 too.
    result = subprocess.run(
        [
            *private_pypi_command(),
            "fs.init_pkg_repo",
            "--name",
            "new",
            "--config",
            str(tmp_path / "new-config.toml"),
            "--admin_secret",
            str(tmp_path / "new-admin.toml"),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert mode(tmp_path / "new-config.toml") == 0o600
    assert mode(tmp_path / "new-admin.toml") == 0o600
    secret = read_toml(str(tmp_path / "new-config.toml"), what="config").data["new"]["write_secret"]
    assert secret not in result.stdout + result.stderr, "init_pkg_repo printed the secret"


def test_the_store_works_again_once_restored(exercised: Exercised) -> None:
    """The failing-store answers were the store's fault, not a broken server."""
    server = exercised.server
    response = requests.get(
        f"{server.simple_url}demo-pkg/{wheel_name('demo-pkg', '1.0')}",
        headers=auth("plain", exercised.spec.secret("plain", "read")),
        timeout=15,
    )
    assert response.status_code == 200


def test_a_store_that_cannot_be_opened_at_start_is_a_readable_error(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "storage-file"
    not_a_folder.write_text("not a folder")
    spec = ServerSpec(tmp_path / "root", {"team": fs_table("team", storage_path=str(not_a_folder))})
    result = subprocess.run(
        [*private_pypi_command(), "server", str(spec.root), "--port=0", *spec.args()],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    output = result.stdout + result.stderr
    assert not [secret for secret in spec.admin.values() if secret in output]
    assert spec.secret("team", "read") not in output
    assert result.returncode == 2, output
    assert ("\n" + output).count("\nError: ") == 1 and "Traceback" not in output, output
    assert "team" in output and "storage-file" in output, output
