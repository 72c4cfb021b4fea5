"""One package repository of a running server, as a credential sees it: its projects and their
files (the PEP 691 pages), and publishing a file through the upload API, with the checks of any
upload. The HTTP side of ``private_pypi import``."""

from __future__ import annotations

import contextlib
import enum
import io
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

from private_pypi_core.backend import DistFile
from private_pypi_core.dists import normalize_project
from private_pypi_core.errors import ServerError
from private_pypi_core.server_client import without_user_info

if TYPE_CHECKING:
    import requests

JSON_PAGE = "application/vnd.pypi.simple.v1+json"  # PEP 691
ATTEMPTS = 3  # per request; an upload is safe to repeat (the same bytes again succeed)
RETRY_STATUSES = frozenset({502, 503, 504})  # a proxy, or the store, failing for a moment
BACKOFF_SECONDS = 1.0  # doubled after each failed attempt
READ_TIMEOUT = (10, 60)  # seconds to connect, to wait for an answer
UPLOAD_TIMEOUT = (10, 600)  # the server checks and stores the whole file before it answers


class ServerUnreachable(ServerError):
    """The server did not answer, after retries."""


class Outcome(enum.Enum):
    UPLOADED = "uploaded"
    SKIPPED = "skipped"  # the server has that very file already
    CONFLICT = "conflict"  # the server has another file of that name
    FAILED = "failed"  # refused: a broken file, a closed project, a credential's scope...


@dataclass(frozen=True)
class Answer:
    outcome: Outcome
    message: str = ""  # the server's words, for a refusal


class UploadClient:
    """A package repository of the server at ``url`` (e.g. ``http://127.0.0.1:8888``), opened
    by ``credential`` (basic auth). Safe to use from several threads."""

    def __init__(self, url: str, credential: tuple[str, str]) -> None:
        self.url = url.rstrip("/")
        self.credential = credential
        self._local = threading.local()  # a requests.Session per thread: they are not shared

    def projects(self) -> set[str] | None:
        """The projects the repository has (normalised), or ``None`` when the credential may
        not read it (an upload-only token); ``ServerError`` when the server refuses the
        credential or cannot be reached."""
        response = self._send("GET", f"{self.url}/simple/", timeout=READ_TIMEOUT)
        if response.status_code == 403:
            return None
        if not response.ok:
            raise ServerError(_refusal(response))
        try:
            return {normalize_project(project["name"]) for project in response.json()["projects"]}
        except (ValueError, KeyError, TypeError) as error:
            raise ServerError(_not_json(response, error)) from None

    def project_files(self, project: str) -> dict[str, str]:
        """The files the repository has of ``project`` (normalised), with their sha256."""
        url = f"{self.url}/simple/{project}/"
        response = self._send("GET", url, timeout=READ_TIMEOUT)
        # A project the repository lacks answers 404, or a redirect to the extra index: not
        # followed, whatever the extra index has does not count.
        if response.status_code == 404 or response.is_redirect:
            return {}
        if not response.ok:
            raise ServerError(_refusal(response))
        try:
            return {file["filename"]: file["hashes"]["sha256"] for file in response.json()["files"]}
        except (ValueError, KeyError, TypeError) as error:
            raise ServerError(_not_json(response, error)) from None

    def upload(self, stream: BinaryIO, length: int, dist: DistFile, sha256: str) -> Answer:
        """Publish ``dist``, the ``length`` bytes of ``stream`` (all it holds, of sha256
        ``sha256``), streamed as they are read: memory stays flat. ``LocalFileError`` when
        they cannot be read, or are not ``length`` bytes: nothing was published."""
        fields = {
            ":action": "file_upload",
            "protocol_version": "1",
            "name": dist.project,
            "version": dist.version,
            "filetype": "bdist_wheel" if dist.filename.endswith(".whl") else "sdist",
            "sha256_digest": sha256,
        }
        response = self._send(
            "POST",
            f"{self.url}/simple/",
            form=lambda: _Form(fields, dist.filename, stream, length),
            timeout=UPLOAD_TIMEOUT,
        )
        if response.ok:
            # The server answers "Published <filename>", or "<filename> is already stored".
            published = response.text.startswith("Published")
            return Answer(Outcome.UPLOADED if published else Outcome.SKIPPED)
        outcome = Outcome.CONFLICT if response.status_code == 409 else Outcome.FAILED
        return Answer(outcome, f"{response.status_code}: {response.text.strip()}")

    def _send(
        self,
        method: str,
        url: str,
        *,
        timeout: tuple[float, float],
        form: Callable[[], _Form] | None = None,
    ) -> requests.Response:
        """``method url``, tried again after a failed connection or a passing 502-504;
        ``ServerUnreachable`` when the last attempt fails to connect too."""
        # Imported here, as in ``server_client``: the other commands start without it.
        import requests

        for attempt in range(ATTEMPTS - 1):
            with contextlib.suppress(requests.RequestException):
                response = self._attempt(method, url, timeout, form)
                if response.status_code not in RETRY_STATUSES:
                    return response
            time.sleep(BACKOFF_SECONDS * 2**attempt)
        try:
            return self._attempt(method, url, timeout, form)
        except requests.RequestException as error:
            raise ServerUnreachable(f"cannot reach {without_user_info(url)}: {error}") from None

    def _attempt(
        self,
        method: str,
        url: str,
        timeout: tuple[float, float],
        form: Callable[[], _Form] | None,
    ) -> requests.Response:
        body = form() if form is not None else None  # a new one each time: it is read once
        return self._session().request(
            method,
            url,
            data=body,
            headers=_headers(body),
            auth=self.credential,
            timeout=timeout,
            allow_redirects=False,
        )

    def _session(self) -> requests.Session:
        import requests

        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session


def _headers(body: _Form | None) -> dict[str, str]:
    if body is None:
        return {"Accept": JSON_PAGE}
    return {"Content-Type": body.content_type}


def _refusal(response: requests.Response) -> str:
    url = without_user_info(response.url)
    return f"{url} answered {response.status_code}: {response.text.strip()}"


def _not_json(response: requests.Response, error: Exception) -> str:
    return (
        f"{without_user_info(response.url)} answered a page that is not PEP 691 JSON "
        f"({error}): is it private-pypi?"
    )


class LocalFileError(Exception):
    """The file to send cannot be sent as it was measured: it changed length while it was
    read (or its length lied, as a file of ``/proc`` does), or reading it failed. Not an
    ``OSError``: requests would take that for a failed connection, and send it again."""


class ExactReader:
    """The ``length`` bytes of ``stream`` from where it is, which must be all it holds: the
    bytes sent are the bytes counted in Content-Length, never more, never fewer."""

    def __init__(self, stream: BinaryIO, length: int) -> None:
        self._stream = stream
        self._length = self._left = length
        self._end_checked = False

    def read(self, size: int = -1) -> bytes:
        if self._left == 0:
            if not self._end_checked:
                self._end_checked = True
                if self._read(1):
                    raise LocalFileError(
                        f"it changed while it was read (it holds more than {self._length:,} bytes)"
                    )
            return b""
        chunk = self._read(self._left if size < 0 else min(size, self._left))
        if not chunk:
            raise LocalFileError(
                f"it changed while it was read ({self._left:,} of {self._length:,} bytes missing)"
            )
        self._left -= len(chunk)
        return chunk

    def _read(self, size: int) -> bytes:
        try:
            return self._stream.read(size)
        except OSError as error:
            raise LocalFileError(f"cannot read it: {error}") from None


class _Form:
    """A multipart/form-data body of text fields and the file, read from disk as it is sent.

    requests sends an object with ``read`` and ``__len__`` as it reads it, with that length as
    Content-Length (its own ``files=`` would hold the whole file in memory).
    """

    def __init__(self, fields: dict[str, str], filename: str, stream: BinaryIO, length: int):
        boundary = secrets.token_hex(16)
        head = b"".join(
            _part_head(boundary, name) + value.encode() + b"\r\n" for name, value in fields.items()
        )
        head += _part_head(boundary, "content", filename)
        tail = f"\r\n--{boundary}--\r\n".encode()
        self.content_type = f"multipart/form-data; boundary={boundary}"
        stream.seek(0)  # from the start, on every attempt
        self._parts: list[io.BytesIO | ExactReader] = [
            io.BytesIO(head),
            ExactReader(stream, length),
            io.BytesIO(tail),
        ]
        self._length = len(head) + length + len(tail)

    def __len__(self) -> int:
        return self._length

    def read(self, size: int = -1) -> bytes:
        while self._parts:
            chunk = self._parts[0].read(size)
            if chunk or size == 0:
                return chunk
            self._parts.pop(0)
        return b""


def _part_head(boundary: str, name: str, filename: str | None = None) -> bytes:
    disposition = f'form-data; name="{name}"'
    if filename is not None:  # a parsed distribution filename: no quote or line break in it
        disposition += f'; filename="{filename}"\r\nContent-Type: application/octet-stream'
    return f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode()
