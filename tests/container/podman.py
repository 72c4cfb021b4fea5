"""The project's container image, built and run for real with podman on a debootstrapped base.

No container registry is reachable from CI, so the base image is made here: ``debootstrap`` of
this machine's Debian release with ``python3``, ``python3-venv`` and ``ca-certificates``, from
the mirror apt uses, cached as a tarball under ``~/.cache/private-pypi-ci/`` (keyed by the
release and the packages) and ``podman import``-ed. The project's ``Containerfile`` is built on
it with ``--build-arg BASE_IMAGE``. This machine runs containers only with runc (crun fails on
its cgroups) and with its own hard file and process limits; the build's pip trusts the machine's
CA bundle through a build secret, which never reaches a layer.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.server import free_port

REPOSITORY = Path(__file__).resolve().parents[2]
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "private-pypi-ci"
CA_BUNDLE = Path(os.environ.get("PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt")
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
IMAGE_ROOT = "/private-pypi-root"
IMAGE_PORT = 8888
PODMAN = ("podman", "--runtime", "runc")
DEBOOTSTRAP_SECONDS = 900
BUILD_SECONDS = 900
COMMAND_SECONDS = 120
STARTUP_SECONDS = 60
STOP_SECONDS = 10


def require_tools() -> None:
    """Fail (never skip) where the tools are missing: CI installs them, so must a developer."""
    missing = [tool for tool in ("podman", "runc", "debootstrap") if shutil.which(tool) is None]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} not installed: apt-get install podman runc debootstrap "
            "(as .ci/run does)"
        )
    if os.geteuid() != 0:
        pytest.fail("the container tests run as root (debootstrap, podman image mount)")


def run(args: Sequence[str], timeout: float = COMMAND_SECONDS) -> subprocess.CompletedProcess[str]:
    """Run a command to completion, its output captured; failing it fails the test, with it."""
    result = subprocess.run(
        list(args),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"$ {' '.join(args)}\nexit code {result.returncode}\n{output(result)}")
    return result


def output(result: subprocess.CompletedProcess[str]) -> str:
    return f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"


def podman(*args: str, timeout: float = COMMAND_SECONDS) -> subprocess.CompletedProcess[str]:
    return run([*PODMAN, *args], timeout=timeout)


def debian_release() -> str:
    """This machine's Debian codename, e.g. ``bookworm``."""
    for line in Path("/etc/os-release").read_text().splitlines():
        key, _, value = line.partition("=")
        if key == "VERSION_CODENAME" and value.strip('"'):
            return value.strip('"')
    pytest.fail("/etc/os-release names no VERSION_CODENAME: not a Debian machine")


def debian_mirror(release: str) -> str:
    """The mirror apt is configured with for ``release`` itself (not -updates or -security)."""
    targets = run(
        ["apt-get", "indextargets", "--format", "$(REPO_URI) $(RELEASE) $(IDENTIFIER)"]
    ).stdout
    for line in targets.splitlines():
        fields = line.split()
        if fields[1:] == [release, "Packages"]:
            return fields[0]
    pytest.fail(f"apt knows no mirror for {release} (run apt-get update):\n{targets}")


def base_tarball(release: str) -> Path:
    """A root file system of Debian ``release`` with the base packages, made once and cached."""
    tarball = CACHE / f"debian-{release}-{'-'.join(BASE_PACKAGES)}.tar"
    if tarball.exists():
        return tarball
    CACHE.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="debootstrap-", dir=CACHE))
    rootfs = work / "rootfs"
    try:
        run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(BASE_PACKAGES)}",
                release,
                str(rootfs),
                debian_mirror(release),
            ],
            timeout=DEBOOTSTRAP_SECONDS,
        )
        # What an official Debian image leaves out too: downloaded packages and apt's lists.
        for leftovers in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for path in (rootfs / leftovers).glob("*"):
                if path.is_file():
                    path.unlink()
        partial = work / "rootfs.tar"
        run(["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(partial), "."])
        partial.rename(tarball)
    finally:
        _remove_work_tree(work)
    return tarball


def _remove_work_tree(work: Path) -> None:
    """Delete debootstrap's tree, never through a /proc, /sys or /dev it left mounted there."""
    for mount_point in sorted(_mounts_under(work), key=len, reverse=True):
        subprocess.run(["umount", "--lazy", mount_point], capture_output=True, check=False)
    if still_mounted := _mounts_under(work):
        pytest.fail(f"left {work} in place: still mounted there: {still_mounted}")
    shutil.rmtree(work)


def _mounts_under(directory: Path) -> list[str]:
    prefix = str(directory.resolve())
    mount_points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mount_point = line.split()[4].encode().decode("unicode_escape")  # octal escapes: \040
        if mount_point == prefix or mount_point.startswith(prefix + "/"):
            mount_points.append(mount_point)
    return mount_points


def import_base(tarball: Path, tag: str) -> str:
    podman("import", "--change", f"ENV=PATH={PATH}", str(tarball), tag)
    return tag


def build(tag: str, base_image: str, *build_args: str) -> subprocess.CompletedProcess[str]:
    """``podman build`` of the project's Containerfile on ``base_image``; its result, unchecked."""
    secret = ["--secret", f"id=pip_cert,src={CA_BUNDLE}"] if CA_BUNDLE.is_file() else []
    args = [*PODMAN, "build", "--runtime", "runc", "--layers=false", "--file", "Containerfile"]
    args += ["--format", "docker"]  # an OCI image would drop the HEALTHCHECK
    args += ["--build-arg", f"BASE_IMAGE={base_image}", *build_args, *secret, "--tag", tag, "."]
    return subprocess.run(
        args,
        cwd=REPOSITORY,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=BUILD_SECONDS,
        check=False,
    )


def image_size(tag: str) -> int:
    return int(podman("image", "inspect", "--format", "{{.Size}}", tag).stdout)


@contextmanager
def mounted_image(tag: str) -> Iterator[Path]:
    """The image's file system, read from this machine (rootful podman)."""
    path = Path(podman("image", "mount", tag).stdout.strip())
    try:
        yield path
    finally:
        podman("image", "unmount", tag)


def run_flags() -> list[str]:
    """What ``podman run`` needs on this machine: limits no higher than its own hard ones."""
    _, nofile = resource.getrlimit(resource.RLIMIT_NOFILE)
    return ["--ulimit", f"nofile={nofile}:{nofile}", "--ulimit", "nproc=32768:32768"]


@dataclass
class Container:
    """A started container whose server answers on 127.0.0.1:``port``."""

    name: str
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def simple_url(self) -> str:
        return f"{self.url}/simple/"

    def credentials_url(self, repository: str, secret: str) -> str:
        return f"http://{repository}:{secret}@127.0.0.1:{self.port}/simple/"

    def logs(self) -> str:
        result = subprocess.run(
            [*PODMAN, "logs", self.name], capture_output=True, text=True, check=False
        )
        return result.stdout + result.stderr

    def state(self) -> dict[str, object]:
        inspected = json.loads(podman("inspect", "--format", "json", self.name).stdout)
        state: dict[str, object] = inspected[0]["State"]
        return state

    def wait_until_serving(self) -> None:
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if not self.state()["Running"]:
                pytest.fail(f"container {self.name} exited:\n{self.logs()}")
            try:
                requests.get(f"{self.url}/login/", timeout=2)
                return
            except (requests.ConnectionError, requests.Timeout):
                time.sleep(0.2)
        pytest.fail(f"container {self.name} did not serve in {STARTUP_SECONDS}s:\n{self.logs()}")

    def stop(self) -> int:
        """``podman stop`` (SIGTERM, SIGKILL after 10 s); the exit code it ended with."""
        podman("stop", "--time", str(STOP_SECONDS), self.name, timeout=STOP_SECONDS + 60)
        exit_code = self.state()["ExitCode"]
        assert isinstance(exit_code, int)
        return exit_code


@contextmanager
def running(
    image: str,
    *args: str,
    volumes: Sequence[str] = (),
    env: dict[str, str] | None = None,
    host_network: bool = False,
) -> Iterator[Container]:
    """``podman run -d IMAGE ARGS``, serving; removed afterwards, whatever happened.

    Port 8888 is published on 127.0.0.1; with ``host_network`` (to reach a service of this
    machine's loopback) the container shares this machine's network instead, and environment
    mode tells the server where to listen.
    """
    container = Container(name=f"private-pypi-ci-{uuid.uuid4().hex[:12]}", port=free_port())
    options = [f"--volume={volume}" for volume in volumes]
    env = dict(env or {})
    if host_network:
        options.append("--network=host")
        env |= {
            "PRIVATE_PYPI_COMMAND_HOST": "127.0.0.1",
            "PRIVATE_PYPI_COMMAND_PORT": str(container.port),
        }
    else:
        options.append(f"--publish=127.0.0.1:{container.port}:{IMAGE_PORT}")
    options += [f"--env={name}={value}" for name, value in env.items()]
    try:
        podman("run", "--detach", "--name", container.name, *run_flags(), *options, image, *args)
        container.wait_until_serving()
        yield container
    finally:
        subprocess.run(
            [*PODMAN, "rm", "--force", "--volumes", container.name],
            capture_output=True,
            timeout=COMMAND_SECONDS,
            check=False,
        )
