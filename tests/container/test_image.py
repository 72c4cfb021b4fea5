"""The container image, built from the Containerfile and run the ways the README tells operators.

Slow and root-only (debootstrap, podman): ``nox -s container`` runs it, ``nox -s tests`` not.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.container.podman import (
    CA_BUNDLE,
    IMAGE_ROOT,
    Container,
    base_tarball,
    build,
    debian_release,
    image_size,
    import_base,
    mounted_image,
    output,
    podman,
    require_tools,
    run_flags,
    running,
)
from tests.dists import make_wheel
from tests.e2e.clients import client_env, executable, pip_install, report
from tests.e2e.clients import run as run_client
from tests.s3.seaweed import ACCESS_KEY_ID_ENV, SECRET_ACCESS_KEY_ENV, Seaweed, start_seaweed

pytestmark = pytest.mark.e2e

IMAGE = "localhost/private-pypi:ci"
# What building on top of the base may add: the server's venv, ROOT and the user's entries.
USER_DATABASE = ("passwd", "group", "shadow", "gshadow", "subuid", "subgid", ".pwd.lock")
ADDED = ("/opt/private-pypi", "/private-pypi-root", *(f"/etc/{name}" for name in USER_DATABASE))
PARENTS = ("/opt", "/etc")
BUILD_ONLY = ("pip", "setuptools", "wheel", "hatchling")
SERVER_MEGABYTES = 120  # the venv was 104 MB: the web UI's readme_renderer brings pygments etc.
LIST_PLUGINS = (
    "import importlib.metadata as m; "
    "print(*sorted(e.name for e in m.entry_points(group='private_pypi')))"
)


@pytest.fixture(scope="module")
def base_image() -> str:
    require_tools()
    release = debian_release()
    return import_base(base_tarball(release), f"localhost/private-pypi-ci-base:{release}")


@pytest.fixture(scope="module")
def image(base_image: str) -> Iterator[str]:
    result = build(IMAGE, base_image)
    assert result.returncode == 0, output(result)
    yield IMAGE
    podman("rmi", "--force", IMAGE)


def repository_files(tmp_path: Path, name: str) -> tuple[Path, Path, dict[str, str]]:
    """A config and an admin secret file for one file-system repository, and its secrets."""
    secret = {"read": secrets.token_urlsafe(24), "write": secrets.token_urlsafe(24)}
    config = tmp_path / "config.toml"
    config.write_text(
        f'[{name}]\ntype = "file_system"\n'
        f'read_secret = "{secret["read"]}"\nwrite_secret = "{secret["write"]}"\n'
    )
    admin_secret = tmp_path / "admin_secret.toml"
    admin_secret.write_text(f'[{name}]\ntype = "file_system"\nraw = "{secret["write"]}"\n')
    return config, admin_secret, secret


def twine_upload(
    container: Container, repository: str, password: str, wheel: Path, tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    return run_client(
        [
            executable("twine"),
            "upload",
            "--non-interactive",
            "--disable-progress-bar",
            "--repository-url",
            container.simple_url,
            f"--username={repository}",
            f"--password={password}",
            str(wheel),
        ],
        client_env(tmp_path),
    )


def changed_paths(image: str, base: str) -> list[str]:
    """The paths ``podman image diff`` finds added or changed in ``image`` over ``base``."""
    diff = json.loads(podman("image", "diff", "--format", "json", image, base).stdout)
    return [*diff.get("added", []), *diff.get("changed", [])]


def test_image_adds_only_the_server_and_its_user_to_the_base(
    image: str, base_image: str, capsys: pytest.CaptureFixture[str]
) -> None:
    changed = changed_paths(image, base_image)
    unexpected = [path for path in changed if not path.startswith(ADDED) and path not in PARENTS]
    assert not unexpected, f"the build left files outside the server's venv: {unexpected}"
    site_packages = {Path(path).parts[6] for path in changed if "/site-packages/" in path}
    leftovers = [name for name in site_packages if name.lower().startswith(BUILD_ONLY)]
    assert not leftovers, f"build tools left in the image: {leftovers}"
    ca_bundle = CA_BUNDLE.read_bytes()
    with mounted_image(image) as merged:
        files = [merged / path.lstrip("/") for path in changed]
        copies = [
            file
            for file in files
            if file.is_file() and not file.is_symlink() and file.stat().st_size == len(ca_bundle)
            if file.read_bytes() == ca_bundle
        ]
    assert not copies, f"the build's CA bundle reached the image: {copies}"
    size, base_size = image_size(image), image_size(base_image)
    with capsys.disabled():
        print(f"\n{image}: {size / 1e6:.0f} MB, of which its base {base_size / 1e6:.0f} MB")
    assert size - base_size < SERVER_MEGABYTES * 1_000_000


def test_no_arguments_serve_the_embedded_default_as_a_non_root_user(
    image: str, tmp_path: Path
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    with running(image, volumes=[f"{root}:{IMAGE_ROOT}:U"]) as container:
        users = podman("top", container.name, "user").stdout.split()[1:]
        assert users and "root" not in users, users
        config = root / "embedded" / "config.toml"
        assert config.stat().st_uid != 0
        assert config.stat().st_mode & 0o777 == 0o600
        read_secret = tomllib.loads(config.read_text())["local"]["read_secret"]
        assert requests.get(container.simple_url, timeout=10).status_code == 401
        listing = requests.get(container.simple_url, auth=("local", read_secret), timeout=10)
        assert listing.status_code == 200
        assert "Serving the embedded default" in container.logs()
        podman("healthcheck", "run", container.name)  # the image's HEALTHCHECK: /healthz answers
        assert container.stop() == 0, f"not a clean stop on SIGTERM:\n{container.logs()}"


def test_seed_command_form_serves_mounted_config_to_twine_and_pip(
    image: str, tmp_path: Path
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    config, admin_secret, secret = repository_files(tmp_path, "team")
    volumes = [
        f"{root}:{IMAGE_ROOT}:U",
        f"{config}:/config.toml:ro",
        f"{admin_secret}:/admin_secret.toml:ro",
    ]
    command = ["server", IMAGE_ROOT, "--config=/config.toml", "--admin_secret=/admin_secret.toml"]
    with running(image, *command, volumes=volumes) as container:
        wheel = make_wheel(tmp_path / "dist", "container-probe", "1.0")
        upload = twine_upload(container, "team", secret["write"], wheel, tmp_path)
        assert upload.returncode == 0, report(upload)
        target = tmp_path / "target"
        index_url = container.credentials_url("team", secret["read"])
        installed = pip_install(target, index_url, client_env(tmp_path), "container-probe==1.0")
        assert installed.returncode == 0, report(installed)
        assert "VERSION = '1.0'" in (target / "container_probe" / "__init__.py").read_text()
    stored = [path.name for path in root.rglob(wheel.name)]
    assert stored, f"{wheel.name} is not in the mounted ROOT"
    assert not (root / "embedded").exists(), "the image's environment overrode the arguments"


def test_environment_mode_takes_config_and_admin_secret_as_text(image: str, tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    config, admin_secret, secret = repository_files(tmp_path, "team")
    env = {
        "PRIVATE_PYPI_COMMAND_CONFIG": config.read_text(),
        "PRIVATE_PYPI_COMMAND_ADMIN_SECRET": admin_secret.read_text(),
        "PRIVATE_PYPI_COMMAND_CONFIG_OR_ADMIN_SECRET_CAN_BE_TEXT": "1",
    }
    with running(image, volumes=[f"{root}:{IMAGE_ROOT}:U"], env=env) as container:
        listing = requests.get(container.simple_url, auth=("team", secret["read"]), timeout=10)
        assert listing.status_code == 200, listing.text
        assert "Serving the embedded default" not in container.logs()
    assert not (root / "embedded").exists()


def test_plugins_build_argument_adds_backends_and_s3_serves_from_seaweedfs(
    base_image: str, tmp_path: Path
) -> None:
    tag = f"{IMAGE}-plugins"
    built = build(tag, base_image, "--build-arg", "PLUGINS=fs s3 github")
    assert built.returncode == 0, output(built)
    try:
        plugins = podman(
            "run", "--rm", *run_flags(), "--entrypoint", "python3", tag, "-c", LIST_PLUGINS
        ).stdout.split()
        assert plugins == ["fs", "github", "s3"]
        (tmp_path / "seaweed").mkdir()
        store = start_seaweed(tmp_path / "seaweed")
        try:
            _serve_from_seaweedfs(tag, store, tmp_path)
        finally:
            store.stop()
    finally:
        podman("rmi", "--force", tag)


def _serve_from_seaweedfs(image: str, store: Seaweed, tmp_path: Path) -> None:
    """The S3 image, configured as compose.s3.yaml does it, stores an upload in the bucket."""
    secret = {"read": secrets.token_urlsafe(24), "write": secrets.token_urlsafe(24)}
    settings = {"type": "s3", **store.settings("team"), "download": "stream"}
    settings |= {"read_secret": secret["read"], "write_secret": secret["write"]}
    config = tmp_path / "config.toml"
    config.write_text(
        "[team]\n" + "".join(f'{key} = "{value}"\n' for key, value in settings.items())
    )
    admin_secret = tmp_path / "admin_secret.toml"
    admin_secret.write_text(f'[team]\ntype = "s3"\nraw = "{secret["write"]}"\n')
    root = tmp_path / "root"
    root.mkdir()
    volumes = [
        f"{root}:{IMAGE_ROOT}:U",
        f"{config}:/run/secrets/config:ro,U",
        f"{admin_secret}:/run/secrets/admin_secret:ro,U",
    ]
    env = {
        "PRIVATE_PYPI_COMMAND_CONFIG": "/run/secrets/config",
        "PRIVATE_PYPI_COMMAND_ADMIN_SECRET": "/run/secrets/admin_secret",
        ACCESS_KEY_ID_ENV: store.access_key_id,
        SECRET_ACCESS_KEY_ENV: store.secret_access_key,
    }
    with running(image, volumes=volumes, env=env, host_network=True) as container:
        wheel = make_wheel(tmp_path / "dist", "s3-probe", "1.0")
        upload = twine_upload(container, "team", secret["write"], wheel, tmp_path)
        assert upload.returncode == 0, report(upload)
        download = requests.get(
            f"{container.simple_url}s3-probe/{wheel.name}",
            auth=("team", secret["read"]),
            timeout=10,
        )
        assert download.status_code == 200 and download.content == wheel.read_bytes()
    stored = store.client().get_object(Bucket=store.bucket, Key=f"team/s3-probe/{wheel.name}")
    assert stored["Body"].read() == wheel.read_bytes()


def test_unknown_plugin_fails_the_build_naming_it(base_image: str) -> None:
    unknown = build(f"{IMAGE}-unknown", base_image, "--build-arg", "PLUGINS=fs nosuch")
    assert unknown.returncode != 0
    assert "no plugin named 'nosuch'" in unknown.stderr + unknown.stdout
