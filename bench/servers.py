"""The servers under test, each started as its own process group and stopped by its id.

Every ``start_*`` returns once the server answers ``200`` on ``/simple/`` with the read
credential; the time from ``Popen`` to that answer is its cold start.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bench.client import Http
from bench.console import log
from bench.corpus import BigFile, Corpus

STARTUP_SECONDS = 180.0
POLL_SECONDS = 0.01


@dataclass
class Server:
    """A running server: where it listens, its credential and the paths the benchmark uses."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path
    user: str
    password: str
    download_path: str
    upload_path: str | None
    cold_start: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def authorization(self) -> str:
        """The read credential as an ``Authorization`` header value."""
        return basic_auth(self.user, self.password)

    def pids(self) -> list[int]:
        """The live processes of its process group (master and workers)."""
        return process_group(self.process.pid)

    def stop(self) -> None:
        """SIGTERM to its process group, SIGKILL after 15 s."""
        if self.process.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.process.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue


@contextmanager
def running(start: Callable[[], Server]) -> Iterator[Server]:
    """A started server, stopped (its whole process group) however the block ends."""
    server = start()
    log(f"{server.name} up on port {server.port} (cold start {server.cold_start:.2f} s)")
    try:
        yield server
    finally:
        server.stop()


def basic_auth(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def process_group(pgid: int) -> list[int]:
    """Pids whose process group is ``pgid`` (zombies excluded), read from /proc."""
    pids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            pids.append(int(entry.name))
    return pids


def link_or_copy(source: Path, destination: Path) -> None:
    try:
        os.link(source, destination)
    except OSError:
        shutil.copyfile(source, destination)


def _launch(
    name: str,
    argv: list[str],
    log: Path,
    *,
    port: int,
    password: str,
    download_path: str,
    upload_path: str | None,
    env: dict[str, str] | None = None,
) -> Server:
    """Start ``argv`` in a new session and wait for its first 200 on ``/simple/``."""
    started = time.perf_counter()
    with open(log, "wb") as out:
        process = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
    running = Server(
        name=name,
        port=port,
        process=process,
        log=log,
        user="local",
        password=password,
        download_path=download_path,
        upload_path=upload_path,
    )
    try:
        running.cold_start = _wait_ready(running, started)
    except BaseException:
        running.stop()
        raise
    return running


def _wait_ready(server: Server, started: float) -> float:
    headers = {"Authorization": server.authorization}
    deadline = started + STARTUP_SECONDS
    while time.perf_counter() < deadline:
        if server.process.poll() is not None:
            tail = server.log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{server.name} exited with {server.process.returncode}:\n{tail}")
        try:
            with Http(server.port, timeout=STARTUP_SECONDS) as http:
                if http.get("/simple/", headers).status == 200:
                    return time.perf_counter() - started
        except OSError:
            pass
        time.sleep(POLL_SECONDS)
    raise RuntimeError(f"{server.name} gave no 200 on /simple/ in {STARTUP_SECONDS:.0f} s")


# --- private-pypi ---------------------------------------------------------------------------


@dataclass(frozen=True)
class OursSetup:
    """A ROOT of our server: config, admin secret and secrets of its repository ``local``."""

    root: Path
    config: Path
    admin_secret: Path
    read_secret: str
    write_secret: str


def _private_pypi() -> list[str]:
    script = Path(sys.executable).parent / "private_pypi"
    return [str(script)] if script.exists() else [sys.executable, "-m", "private_pypi_core"]


def _run(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{argv[1]} exited with {done.returncode}: {done.stderr[-2000:]}")


def prepare_ours(work: Path, files: Iterable[tuple[str, Path]]) -> OursSetup:
    """A repository ``local`` whose storage holds ``files`` ((project, path) pairs), not
    indexed yet."""
    work.mkdir(parents=True)
    config, admin = work / "config.toml", work / "admin_secret.toml"
    init = [*_private_pypi(), "fs.init_pkg_repo", "--name", "local"]
    init += ["--config", str(config), "--admin_secret", str(admin)]
    _run(init)
    secrets = tomllib.loads(config.read_text())["local"]
    root = work / "root"
    storage = root / "cache" / "local" / "storage"
    for project, path in files:
        (storage / project).mkdir(parents=True, exist_ok=True)
        link_or_copy(path, storage / project / path.name)
    return OursSetup(
        root=root,
        config=config,
        admin_secret=admin,
        read_secret=secrets["read_secret"],
        write_secret=secrets["write_secret"],
    )


def update_index(setup: OursSetup) -> float:
    """Seconds one ``private_pypi update_index`` of the storage takes."""
    index = [*_private_pypi(), "update_index", "file_system", "local"]
    index += ["--secret", setup.write_secret, "--root", str(setup.root)]
    index += ["--config", str(setup.config)]
    started = time.perf_counter()
    _run(index)
    return time.perf_counter() - started


def add_proxy_repository(setup: OursSetup, name: str, upstream: str, **proxy: str | int) -> str:
    """Add to ``setup``'s config a proxy repository ``name`` of ``upstream`` (a simple index
    URL, credentials allowed) stored on the file system, with the ``[<name>.proxy]`` settings
    ``proxy``; its read secret."""
    read_secret = secrets.token_hex(32)
    table = {"type": "file_system", "read_secret": read_secret}
    lines = ["", f"[{name}]", *_toml_pairs(table), f"[{name}.proxy]"]
    lines += _toml_pairs({"upstream": upstream, **proxy})
    with open(setup.config, "a") as config:
        config.write("\n".join(lines) + "\n")
    admin = {"type": "file_system", "raw": secrets.token_hex(32)}  # its index is the server's
    with open(setup.admin_secret, "a") as admin_secret:
        admin_secret.write("\n".join(["", f"[{name}]", *_toml_pairs(admin)]) + "\n")
    return read_secret


def _toml_pairs(values: Mapping[str, object]) -> list[str]:
    return [f"{key} = {json.dumps(value)}" for key, value in values.items()]


def start_ours(
    setup: OursSetup, workers: int, download: BigFile | None = None, name: str = "ours"
) -> Server:
    port = free_port()
    argv = [*_private_pypi(), "server", str(setup.root), "--config", str(setup.config)]
    argv += ["--admin_secret", str(setup.admin_secret), "--host", "127.0.0.1"]
    argv += ["--port", str(port), "--workers", str(workers), "--extra_index_url="]
    return _launch(
        name,
        argv,
        setup.root.parent / "server.log",
        port=port,
        password=setup.read_secret,
        download_path=f"/simple/{download.project}/{download.path.name}" if download else "",
        upload_path="/simple/",
    )


# --- pypiserver -----------------------------------------------------------------------------


def htpasswd_line(user: str, password: str) -> str:
    """An htpasswd ``{SHA}`` entry: cheap to check, read by passlib and by nginx alike."""
    digest = base64.b64encode(hashlib.sha1(password.encode()).digest()).decode()
    return f"{user}:{{SHA}}{digest}\n"


def start_pypiserver(work: Path, corpus: Corpus, workers: int, password: str) -> Server:
    """pypi-server on gunicorn sync workers, the corpus copied flat into its folder."""
    packages = work / "packages"
    packages.mkdir(parents=True)
    for _, path in [*corpus.files(), ("", corpus.download.path)]:
        link_or_copy(path, packages / path.name)
    htpasswd = work / "htpasswd"
    htpasswd.write_text(htpasswd_line("local", password))
    port = free_port()
    script = Path(sys.executable).parent / "pypi-server"
    argv = [str(script), "run", "-p", str(port), "-i", "127.0.0.1", "--server", "gunicorn"]
    argv += ["-a", "download,list,update", "-P", str(htpasswd), "--disable-fallback"]
    argv += [str(packages)]
    gunicorn_args = f"--workers={workers}"
    if _gunicorn_has_control_socket():
        gunicorn_args += " --no-control-socket"
    return _launch(
        "pypiserver",
        argv,
        work / "server.log",
        port=port,
        password=password,
        download_path=f"/packages/{corpus.download.path.name}",
        upload_path="/",
        env={"GUNICORN_CMD_ARGS": gunicorn_args},
    )


def _gunicorn_has_control_socket() -> bool:
    from gunicorn.config import Config

    return "control_socket" in Config().settings


# --- nginx ----------------------------------------------------------------------------------


NGINX_CONF = """\
{user}worker_processes {workers};
daemon off;
pid {work}/nginx.pid;
error_log {work}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    types {{ text/html html; application/octet-stream whl gz; }}
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    client_body_temp_path {work}/tmp/body;
    proxy_temp_path {work}/tmp/proxy;
    fastcgi_temp_path {work}/tmp/fastcgi;
    uwsgi_temp_path {work}/tmp/uwsgi;
    scgi_temp_path {work}/tmp/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {site};
        index index.html;
        gzip_static {gzip_static};
        auth_basic "bench";
        auth_basic_user_file {work}/htpasswd;
    }}
}}
"""


def start_nginx(work: Path, site: Path, download_path: str, workers: int, password: str) -> Server:
    """nginx serving the static ``site`` (pages written by ``bench.pages``) with basic auth."""
    nginx = shutil.which("nginx")
    if nginx is None:
        raise RuntimeError("nginx is not installed")
    (work / "tmp").mkdir(parents=True)
    (work / "htpasswd").write_text(htpasswd_line("local", password))
    port = free_port()
    user = "user root root;\n" if os.geteuid() == 0 else ""
    gzip_static = "on" if any(site.rglob("index.html.gz")) else "off"
    conf = work / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(
            user=user, workers=workers, work=work, port=port, site=site, gzip_static=gzip_static
        )
    )
    argv = [nginx, "-p", str(work), "-e", str(work / "error.log"), "-c", str(conf)]
    return _launch(
        "nginx",
        argv,
        work / "nginx.out",
        port=port,
        password=password,
        download_path=download_path,
        upload_path=None,
    )
