"""Shared by the hardening tests: servers with known secrets, raw HTTP, storage snapshots,
upload forms built byte by byte, and the worker processes of a running server."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import re
import secrets
import select
import socket
import tarfile
import time
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import requests
import tomli_w

from private_pypi_core.index import IndexRoot, PackageIndex, Shard
from tests.core.helpers import TrackedServer, start_tracked_server
from tests.server import RunningServer, start_server

JSON_V1 = "application/vnd.pypi.simple.v1+json"
BOUNDARY = "hardening-7f3a9c"
UPLOAD_CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"
HTTP_TIMEOUT = 15


# --- Secrets, configs and servers -----------------------------------------------------------


def new_secret(label: str) -> str:
    """A secret that is easy to spot in a log or a response body."""
    return f"{label}-{secrets.token_hex(16)}"


def sha256_hex(data: bytes | str) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def fs_table(name: str, **extra: object) -> dict[str, object]:
    """A ``file_system`` repository table with fresh read and write secrets."""
    return {
        "type": "file_system",
        "read_secret": new_secret(f"{name}-read"),
        "write_secret": new_secret(f"{name}-write"),
        **extra,
    }


@dataclass
class ServerSpec:
    """How to (re)start a server on one ROOT with a config of known secrets."""

    root: Path
    tables: dict[str, dict[str, object]]
    flags: tuple[str, ...] = ()
    admin: dict[str, str] = field(default_factory=dict)  # repository -> admin secret

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if not self.admin:
            self.admin = {
                name: str(table["write_secret"])
                for name, table in self.tables.items()
                if "write_secret" in table
            }
        folder = self.root.parent / f"{self.root.name}-settings"
        folder.mkdir(exist_ok=True)
        self.config_path = folder / "config.toml"
        self.admin_path = folder / "admin_secret.toml"
        self.config_path.write_text(tomli_w.dumps(self.tables))
        admin_tables = {
            name: {"type": self.tables[name]["type"], "raw": secret}
            for name, secret in self.admin.items()
        }
        self.admin_path.write_text(tomli_w.dumps(admin_tables))

    def args(self, *more_flags: str) -> list[str]:
        """The ``private_pypi server ROOT`` flags of this server."""
        return [
            "--extra_index_url=",
            "--config",
            str(self.config_path),
            "--admin_secret",
            str(self.admin_path),
            *self.flags,
            *more_flags,
        ]

    def start(self, *more_flags: str) -> RunningServer:
        return self.know_secrets(start_server(self.root, *self.args(*more_flags)))

    def start_tracked(self, *more_flags: str) -> TrackedServer:
        """A server whose access log names the worker process of each request."""
        tracked = start_tracked_server(self.root, *self.args(*more_flags))
        self.know_secrets(tracked.server)
        return tracked

    def know_secrets(self, server: RunningServer) -> RunningServer:
        server.repositories = {
            name: {key: str(value) for key, value in table.items() if isinstance(value, str)}
            for name, table in self.tables.items()
        }
        return server

    def secret(self, repository: str, kind: str) -> str:
        return str(self.tables[repository][f"{kind}_secret"])


def auth(repository: str, secret: str) -> dict[str, str]:
    token = base64.b64encode(f"{repository}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def read_auth(server: RunningServer, repository: str = "local") -> dict[str, str]:
    return auth(repository, server.secret(repository, "read"))


def write_auth(server: RunningServer, repository: str = "local") -> dict[str, str]:
    return auth(repository, server.secret(repository, "write"))


# --- Distributions and upload forms ---------------------------------------------------------


def wheel_bytes(
    name: str,
    version: str,
    *,
    payload: bytes = b"",
    metadata: bool = True,
    metadata_name: str | None = None,
    metadata_version: str | None = None,
) -> bytes:
    """A small wheel of project ``name``; ``payload`` makes its bytes differ."""
    module = name.lower().replace("-", "_").replace(".", "_")
    dist_info = f"{module}-{version}.dist-info"
    buffer = io.BytesIO()
    members = {f"{module}/__init__.py": b"PAYLOAD = " + repr(payload).encode() + b"\n"}
    if metadata:
        members[f"{dist_info}/METADATA"] = (
            f"Metadata-Version: 2.1\nName: {metadata_name or name}\n"
            f"Version: {metadata_version or version}\n\n"
        ).encode()
    members[f"{dist_info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as wheel:
        for member, data in members.items():
            # A fixed date: the same arguments always give the same bytes.
            info = zipfile.ZipInfo(member, date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            wheel.writestr(info, data)
    return buffer.getvalue()


def sdist_bytes(name: str, version: str, *, base: str | None = None) -> bytes:
    """A small .tar.gz sdist with a top-level PKG-INFO (Metadata-Version 2.2)."""
    folder = base or f"{name.lower().replace('-', '_')}-{version}"
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w") as sdist,
    ):
        data = f"Metadata-Version: 2.2\nName: {name}\nVersion: {version}\n\n".encode()
        info = tarfile.TarInfo(f"{folder}/PKG-INFO")
        info.size = len(data)
        info.mtime = 1577836800
        sdist.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def wheel_name(name: str, version: str) -> str:
    return f"{name.lower().replace('-', '_').replace('.', '_')}-{version}-py3-none-any.whl"


def form_fields(
    filename: str, data: bytes, *, name: str, version: str, **overrides: str | None
) -> list[tuple[str, str]]:
    """The text fields twine sends with a file; an override of ``None`` drops a field."""
    fields: dict[str, str | None] = {
        ":action": "file_upload",
        "protocol_version": "1",
        "name": name,
        "version": version,
        "filetype": "bdist_wheel" if filename.endswith(".whl") else "sdist",
        "sha256_digest": hashlib.sha256(data).hexdigest(),
        "md5_digest": hashlib.md5(data, usedforsecurity=False).hexdigest(),
        "blake2_256_digest": hashlib.blake2b(data, digest_size=32).hexdigest(),
        **overrides,
    }
    return [(key, value) for key, value in fields.items() if value is not None]


def multipart(
    fields: Sequence[tuple[str, str | bytes]],
    files: Sequence[tuple[str, str | None, bytes]] = (),
    *,
    boundary: str = BOUNDARY,
) -> bytes:
    """A multipart/form-data body written byte by byte: a filename goes in as UTF-8, unescaped
    (what a client that does not sanitise names sends). ``files`` are (field, filename, data);
    a filename of ``None`` sends the part without one."""
    parts = []
    for name, value in fields:
        data = value.encode() if isinstance(value, str) else value
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            + data
            + b"\r\n"
        )
    for name, filename, data in files:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        parts.append(
            f"--{boundary}\r\nContent-Disposition: {disposition}\r\n"
            "Content-Type: application/octet-stream\r\n\r\n".encode()
            + data
            + b"\r\n"
        )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts)


def upload_body(
    filename: str, data: bytes, *, name: str, version: str, **overrides: str | None
) -> bytes:
    return multipart(
        form_fields(filename, data, name=name, version=version, **overrides),
        [("content", filename, data)],
    )


def post_upload(
    server: RunningServer,
    body: bytes,
    headers: Mapping[str, str],
    *,
    content_type: str | None = UPLOAD_CONTENT_TYPE,
) -> requests.Response:
    all_headers = dict(headers)
    if content_type is not None:
        all_headers["Content-Type"] = content_type
    return requests.post(server.simple_url, data=body, headers=all_headers, timeout=HTTP_TIMEOUT)


def upload(
    server: RunningServer,
    filename: str,
    data: bytes,
    *,
    name: str,
    version: str,
    repository: str = "local",
) -> requests.Response:
    body = upload_body(filename, data, name=name, version=version)
    return post_upload(server, body, write_auth(server, repository))


# --- Raw HTTP -------------------------------------------------------------------------------


class _SourceAddressAdapter(requests.adapters.HTTPAdapter):
    def __init__(self, address: str) -> None:
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args: object, **kwargs: object) -> None:
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)  # type: ignore[no-untyped-call]


def client_at(address: str) -> requests.Session:
    """A session whose connections come from ``address``: any 127.x.y.z is a client of its
    own to a server on loopback, as many addresses as a test needs."""
    session = requests.Session()
    session.mount("http://", _SourceAddressAdapter(address))
    return session


@dataclass
class RawResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = [value for key, value in self.headers if key.lower() == name.lower()]
        return values[-1] if values else None

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


def connect(port: int, timeout: float = HTTP_TIMEOUT) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def read_response(sock: socket.socket, timeout: float = HTTP_TIMEOUT) -> RawResponse:
    """One HTTP/1.1 response from ``sock``: Content-Length, chunked, or up to EOF."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed before a complete response: {data!r}")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = [(k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in lines[1:])]
    response = RawResponse(status, headers, b"")
    length = response.header("Content-Length")
    if length is not None:
        while len(rest) < int(length):
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
        response.body = rest[: int(length)]
    elif (response.header("Transfer-Encoding") or "").lower() == "chunked":
        response.body = _dechunk(sock, rest)
    else:
        while chunk := sock.recv(65536):
            rest += chunk
        response.body = rest
    return response


def _dechunk(sock: socket.socket, data: bytes) -> bytes:
    body = b""
    while True:
        while b"\r\n" not in data:
            data += sock.recv(65536)
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return body
        while len(data) < size + 2:
            chunk = sock.recv(65536)
            if not chunk:
                return body + data
            data += chunk
        body, data = body + data[:size], data[size + 2 :]


def raw_get(port: int, target: str, headers: Mapping[str, str] | None = None) -> RawResponse | None:
    """``GET target`` with the request target sent exactly as given (no client normalisation);
    ``None`` when the server closed the connection without answering."""
    lines = [f"GET {target} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines += [f"{key}: {value}" for key, value in (headers or {}).items()]
    with connect(port) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        try:
            return read_response(sock)
        except ConnectionError:
            return None


def request_head(
    method: str, target: str, headers: Mapping[str, str], *, content_length: int | None
) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{key}: {value}" for key, value in headers.items()]
    if content_length is None:
        lines.append("Transfer-Encoding: chunked")
    else:
        lines.append(f"Content-Length: {content_length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def readable(sock: socket.socket, timeout: float = 0) -> bool:
    return bool(select.select([sock], [], [], timeout)[0])


def chunk(data: bytes) -> bytes:
    """``data`` as one chunk of a chunked request body."""
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


# --- What the server stores -----------------------------------------------------------------


def storage_dir(root: Path, repository: str = "local") -> Path:
    return root / "cache" / repository / "storage"


def local_index_path(root: Path, repository: str = "local") -> Path:
    return root / "cache" / repository / "index.json"


@dataclass(frozen=True)
class Snapshot:
    """Every stored byte of one repository and what the server lists."""

    storage: dict[str, bytes]
    local_index: bytes | None
    listing: dict[str, list[tuple[str, str]]]


def listing(server: RunningServer, repository: str = "local") -> dict[str, list[tuple[str, str]]]:
    """Project -> [(filename, sha256)] as the JSON simple pages show them."""
    headers = {**read_auth(server, repository), "Accept": JSON_V1}
    root = requests.get(server.simple_url, headers=headers, timeout=HTTP_TIMEOUT)
    assert root.status_code == 200, f"{root.status_code}: {root.text}"
    pages = {}
    for project in (p["name"] for p in root.json()["projects"]):
        page = requests.get(f"{server.simple_url}{project}/", headers=headers, timeout=HTTP_TIMEOUT)
        assert page.status_code == 200, f"{page.status_code}: {page.text}"
        pages[project] = [(f["filename"], f["hashes"]["sha256"]) for f in page.json()["files"]]
    return pages


def snapshot(server: RunningServer, repository: str = "local") -> Snapshot:
    return Snapshot(
        storage=stored_bytes(server.root, repository),
        local_index=_read_or_none(local_index_path(server.root, repository)),
        listing=listing(server, repository),
    )


def stored_bytes(root: Path, repository: str = "local") -> dict[str, bytes]:
    folder = storage_dir(root, repository)
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def _read_or_none(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def assert_same_snapshot(before: Snapshot, after: Snapshot) -> None:
    added = sorted(set(after.storage) - set(before.storage))
    removed = sorted(set(before.storage) - set(after.storage))
    changed = sorted(
        name
        for name in set(before.storage) & set(after.storage)
        if before.storage[name] != after.storage[name]
    )
    assert not (added or removed or changed), (
        f"storage changed: added {added}, removed {removed}, changed {changed}"
    )
    assert after.local_index == before.local_index, "the local index.json changed"
    assert after.listing == before.listing, f"listing changed: {before.listing} -> {after.listing}"


def temp_files(root: Path) -> list[Path]:
    """Temp files left visible: anything in ROOT/tmp, any ``.*.tmp`` under ROOT/cache."""
    found = list((root / "tmp").iterdir()) if (root / "tmp").exists() else []
    return sorted(found + [p for p in (root / "cache").rglob(".*.tmp")])


def wait_until(condition: Callable[[], bool], timeout: float = 10, interval: float = 0.05) -> bool:
    """Whether ``condition`` came true within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


def index_texts(path: Path) -> list[str]:
    """The text of the index whose root file is ``path``: the root, and each part it names."""
    root = path.read_text()
    names = json.loads(root).get("parts", {}).values()
    return [root, *((_parts_folder(path) / name).read_text() for name in names)]


def _parts_folder(root_file: Path) -> Path:
    """Where the parts of an index are: ``.index-parts`` in a store, ``index-parts`` in the
    local copy."""
    folder = root_file.parent / ".index-parts"
    return folder if folder.is_dir() else root_file.parent / "index-parts"


def parsed_index(path: Path) -> PackageIndex:
    """The index whose root file is ``path``, read with its parts (those of a store beside it
    in ``.index-parts``, those of a local copy in ``index-parts``)."""
    root = IndexRoot.from_bytes(path.read_bytes(), label=str(path))
    if root.index is not None:
        return root.index
    folder = _parts_folder(path)
    return root.with_shards(
        {
            key: Shard.from_bytes((folder / name).read_bytes(), label=name)
            for key, name in root.part_names.items()
        }
    )


def assert_index_matches_storage(
    root: Path, index: PackageIndex, repository: str = "local"
) -> None:
    """Every file ``index`` lists is stored, with its size and sha256 (and metadata file)."""
    folder = storage_dir(root, repository)
    for filename, entry in index.entries.items():
        path = folder / entry.project / filename
        assert path.is_file(), f"{filename} is listed but not stored"
        data = path.read_bytes()
        assert len(data) == entry.size, f"{filename}: size {len(data)} != listed {entry.size}"
        assert sha256_hex(data) == entry.sha256, f"{filename}: sha256 differs from the index"
        if entry.metadata_sha256:
            metadata = (folder / entry.project / f"{filename}.metadata").read_bytes()
            assert sha256_hex(metadata) == entry.metadata_sha256, f"{filename}.metadata differs"


def stored_distributions(root: Path, repository: str = "local") -> dict[str, bytes]:
    """Stored distribution files (not index, lock, metadata or dot files) by filename."""
    folder = storage_dir(root, repository)
    return {
        path.name: path.read_bytes()
        for path in folder.glob("*/*")
        if path.is_file()
        and not path.name.startswith(".")
        and not path.parent.name.startswith(".")  # the index parts
        and not path.name.endswith(".metadata")
    }


# --- Worker processes -----------------------------------------------------------------------


def worker_pids(server: RunningServer) -> list[int]:
    """The gunicorn workers: the children of the ``private_pypi server`` process."""
    children: set[int] = set()
    for task in Path(f"/proc/{server.process.pid}/task").glob("*"):
        try:
            children.update(int(pid) for pid in (task / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return sorted(children)


def wait_for_workers(server: RunningServer, count: int, timeout: float = 20) -> list[int]:
    """Wait until ``count`` workers run and every one has finished starting its app."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = worker_pids(server)
        started = {
            int(match)
            for match in re.findall(r"\[(\d+)\][^\n]*Application startup complete", server.log())
        }
        if len(pids) == count and started.issuperset(pids):
            return pids
        time.sleep(0.05)
    raise AssertionError(
        f"{count} workers did not start: {worker_pids(server)}\n{server.log()[-3000:]}"
    )


def pids_with_open_file(pids: Iterable[int], folder: Path) -> dict[int, list[str]]:
    """Which of ``pids`` hold a file under ``folder`` open, and which files."""
    holders: dict[int, list[str]] = {}
    for pid in pids:
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except (FileNotFoundError, PermissionError):
            continue
        for fd in fds:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith(f"{folder.resolve()}/"):
                holders.setdefault(pid, []).append(target)
    return holders


def status_kib(pid: int, field: str) -> int:
    """A field of ``/proc/<pid>/status`` in KiB: ``VmRSS`` (resident now), ``VmHWM`` (its peak)."""
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", status, re.MULTILINE)
    assert match, f"no {field} for process {pid}"
    return int(match.group(1))


class PeakMemory:
    """How far the resident memory of a server's workers rose at its peak since this was made:
    what an attack cost while it ran, even if the worker freed it afterwards."""

    def __init__(self, server: RunningServer, workers: int) -> None:
        self.pids = wait_for_workers(server, workers)
        for pid in self.pids:
            Path(f"/proc/{pid}/clear_refs").write_text("5")  # the peak (VmHWM) starts at now
        self.before = {pid: status_kib(pid, "VmRSS") for pid in self.pids}

    def growth_kib(self) -> int:
        """In the worker that rose most."""
        return max(status_kib(pid, "VmHWM") - self.before[pid] for pid in self.pids)


SESSION_COOKIE = "private_pypi_session"


def log_in(server: RunningServer, repository: str = "local") -> str:
    """The session cookie a browser gets for the read secret."""
    with requests.Session() as browser:
        form = browser.get(f"{server.url}/login/", timeout=HTTP_TIMEOUT)
        token = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert token is not None, form.text
        response = browser.post(
            f"{server.url}/login/",
            data={
                "repository": repository,
                "secret": server.secret(repository, "read"),
                "csrf": token.group(1),
            },
            allow_redirects=False,
            timeout=HTTP_TIMEOUT,
        )
    assert response.status_code == 303, response.text
    return response.cookies[SESSION_COOKIE]
