"""``private_pypi import``: publish a folder of wheels and sdists (a pypiserver root, flat or
in folders; a ``dist/``) through a running server, so each file gets every check of an upload.

Safe to run again, after an interruption too: a file the server lists under the same name
with the same sha256 is skipped, one listed with another sha256 is a conflict, reported and
never sent (a published file never changes). The server's project list and the PEP 691 page
of each project it has are asked once; a credential that may not read them (an upload-only
token) sends every file, and the server answers "already stored" or ``409`` itself. A few
files are sent at once. A refused file is reported with the server's message and the rest go
on; a server that stops answering stops the run.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, BinaryIO

import typer

from private_pypi_core.backend import DistFile
from private_pypi_core.dists import parse_dist_filename
from private_pypi_core.errors import BadRequest, ConfigError, ServerError
from private_pypi_core.manage_commands import (
    RepositoryName,
    Secret,
    SecretEnv,
    ServerUrl,
    credential,
)
from private_pypi_core.printable import printable
from private_pypi_core.progress import Progress, progress_bar
from private_pypi_core.server_client import DEFAULT_URL
from private_pypi_core.upload_client import (
    Answer,
    ExactReader,
    LocalFileError,
    Outcome,
    ServerUnreachable,
    UploadClient,
)

DEFAULT_JOBS = 4  # uploads at once: enough to hide round trips, few enough for a small server
MAX_JOBS = 16
CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class LocalFile:
    path: Path
    name: str  # the path under the folder imported, as reported
    dist: DistFile


@dataclass
class Summary:
    """What an import did, file by file."""

    done: dict[Outcome, list[LocalFile]] = field(default_factory=lambda: {o: [] for o in Outcome})
    not_tried: int = 0
    stopped: str = ""  # why the run stopped before the end, if it did

    @property
    def all_good(self) -> bool:
        problems = self.done[Outcome.CONFLICT] + self.done[Outcome.FAILED]
        return not problems and not self.stopped

    def line(self) -> str:
        counts = {outcome: len(files) for outcome, files in self.done.items()}
        text = (
            f"{counts[Outcome.UPLOADED]} uploaded, {counts[Outcome.SKIPPED]} skipped (already "
            f"there), {counts[Outcome.CONFLICT]} conflicting, {counts[Outcome.FAILED]} failed"
        )
        if self.stopped:
            text += f", {self.not_tried} not tried. Stopped: {self.stopped}; run it again to resume"
        return text + "."


def find_distributions(folder: Path) -> tuple[list[LocalFile], list[tuple[str, str]]]:
    """The wheels and sdists under ``folder``, sorted, and the other files with why they are
    left out. Hidden files and folders (``.git``, temp files) are passed over in silence.
    Only regular files are sent: a symbolic link is not followed (to ``/etc/passwd``, say),
    and a FIFO or a device is not read."""
    found: list[LocalFile] = []
    others: list[tuple[str, str]] = []
    for top, folders, files in os.walk(folder):  # it goes into no linked folder
        folders[:] = sorted(name for name in folders if not name.startswith("."))
        linked = [name for name in folders if (Path(top) / name).is_symlink()]
        for filename in sorted([*files, *linked]):
            path = Path(top) / filename
            if filename.startswith("."):
                continue
            name = path.relative_to(folder).as_posix()
            why = _not_regular(path)
            if not why:
                try:
                    found.append(LocalFile(path, name, parse_dist_filename(filename)))
                except BadRequest as error:
                    why = str(error)
            if why:
                others.append((name, why))
    return found, others


def _not_regular(path: Path) -> str:
    """What ``path`` is, when it is not a regular file: why it is left out."""
    try:
        mode = path.lstat().st_mode
    except OSError as error:
        return f"cannot read it: {error.strerror}"
    if stat.S_ISLNK(mode):
        return "a symbolic link, not followed: only files in the folder are sent"
    if not stat.S_ISREG(mode):
        return "not a regular file"
    return ""


def import_files(
    files: list[LocalFile],
    client: UploadClient,
    *,
    jobs: int = DEFAULT_JOBS,
    progress: Progress | None = None,
    report: Callable[[str], None] = print,
) -> Summary:
    """Publish ``files`` through ``client``, ``jobs`` at a time; each conflict and failure is
    ``report``-ed as it comes, with the server's message. ``ServerError`` when the server
    refuses the credential before anything is sent. Interrupted (Ctrl-C), it lets the uploads
    under way finish and says what it did."""
    progress = progress or Progress()
    projects = client.projects()
    listings = _Listings(client, projects) if projects is not None else None
    if listings is None:
        report("The credential may not read the repository: every file is sent to the server.")
    summary = Summary()
    progress.add_total(len(files))
    stop = threading.Event()  # once set, files not yet started are left alone
    pool = ThreadPoolExecutor(jobs, thread_name_prefix="import")
    pending = {pool.submit(_import_one, file, client, listings, stop): file for file in files}
    try:
        try:
            _collect(pending, summary, stop, progress, report)
        except KeyboardInterrupt:
            summary.stopped = "interrupted"
            stop.set()
            _collect(pending, summary, stop, progress, report)  # the uploads under way end
    finally:
        stop.set()
        pool.shutdown()
    summary.not_tried = len(files) - sum(len(done) for done in summary.done.values())
    return summary


def _collect(
    pending: dict[Future[Answer | None], LocalFile],
    summary: Summary,
    stop: threading.Event,
    progress: Progress,
    report: Callable[[str], None],
) -> None:
    """Take the answers of ``pending`` as they come; a server out of reach stops the rest."""
    for future in as_completed(list(pending)):
        file = pending.pop(future)
        try:
            answer = future.result()
        except ServerUnreachable as error:
            summary.stopped = summary.stopped or str(error)
            stop.set()
            continue
        if answer is None:
            continue  # not tried: the run was stopped first
        summary.done[answer.outcome].append(file)
        if answer.message:
            report(f"{answer.outcome.value}: {file.name}: {answer.message}")
        progress.advance()


def _import_one(
    file: LocalFile, client: UploadClient, listings: _Listings | None, stop: threading.Event
) -> Answer | None:
    if stop.is_set():
        return None
    try:
        with _opened(file.path) as (stream, length):
            sha256 = _sha256(stream, length)
            return _publish(file, stream, length, sha256, client, listings)
    except LocalFileError as error:
        return Answer(Outcome.FAILED, f"{error}; it was not published")
    except OSError as error:  # removed, unreadable or replaced since the folder was listed
        return Answer(Outcome.FAILED, f"cannot read it: {error}")


@contextlib.contextmanager
def _opened(path: Path) -> Iterator[tuple[BinaryIO, int]]:
    """The regular file at ``path`` open for reading, and its length. Not through a symbolic
    link (put there since the folder was listed), and never waiting for a FIFO's writer."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as stream:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise LocalFileError("it is no longer a regular file")
        yield stream, info.st_size


def _sha256(stream: BinaryIO, length: int) -> str:
    """The sha256 of the ``length`` bytes ``stream`` holds: the very bytes then sent."""
    digest = hashlib.sha256()
    reader = ExactReader(stream, length)
    while chunk := reader.read(CHUNK_BYTES):
        digest.update(chunk)
    return digest.hexdigest()


def _publish(
    file: LocalFile,
    stream: BinaryIO,
    length: int,
    sha256: str,
    client: UploadClient,
    listings: _Listings | None,
) -> Answer:
    """Send ``file`` (``stream``) unless the server lists it; a conflict when it lists
    another file of its name."""
    if listings is not None:
        try:
            listed = listings.files(file.dist.project)
        except ServerUnreachable:
            raise
        except ServerError as error:
            return Answer(Outcome.FAILED, f"cannot list its project: {error}")
        known = listed.get(file.dist.filename)
        if known == sha256:
            return Answer(Outcome.SKIPPED)
        if known is not None:
            return Answer(
                Outcome.CONFLICT,
                f"the server has another file of this name (its sha256 {known}, this file's "
                f"{sha256}); a published file never changes, so this one was not sent",
            )
    return client.upload(stream, length, file.dist, sha256)


class _Listings:
    """The files of each project the server lists, asked once per project however many
    threads want them, and only for the ``projects`` the repository has."""

    def __init__(self, client: UploadClient, projects: set[str]) -> None:
        self._client = client
        self._projects = projects
        self._lock = threading.Lock()
        self._pages: dict[str, Future[dict[str, str]]] = {}

    def files(self, project: str) -> dict[str, str]:
        if project not in self._projects:
            return {}  # a project published meanwhile: the server answers for its files
        with self._lock:
            page = self._pages.get(project)
            asks = page is None
            if page is None:
                page = self._pages[project] = Future()
        if asks:
            try:
                page.set_result(self._client.project_files(project))
            except ServerError as error:
                page.set_exception(error)
        return page.result()


def import_dists(
    dir: Annotated[
        Path,
        typer.Argument(
            help="The folder of wheels and sdists, searched in sub-folders too.",
            exists=True,
            file_okay=False,
        ),
    ],
    repository: RepositoryName,
    url: ServerUrl = DEFAULT_URL,
    secret: Secret = None,
    secret_env: SecretEnv = None,
    jobs: Annotated[
        int, typer.Option("--jobs", help="Files sent at once.", min=1, max=MAX_JOBS)
    ] = DEFAULT_JOBS,
) -> None:
    """Publish a folder of wheels and sdists (a pypiserver root, say) through a running server.

    Each file goes through the upload API, with the checks of any upload. Safe to run again:
    files the server has already are skipped; a file of the same name with other bytes is a
    conflict, reported and not sent. Exits 1 when a file failed or conflicted.
    """
    auth = credential(repository, secret, secret_env)
    files, others = find_distributions(dir)
    for name, why in others:
        typer.echo(printable(f"left out: {name}: {why}"), err=True)
    if not files:
        raise ConfigError(f"{dir} holds no wheel (.whl) or sdist (.tar.gz, .zip)")
    client = UploadClient(url, auth)
    with progress_bar("Importing", "files") as progress:
        summary = import_files(files, client, jobs=jobs, progress=progress, report=_say)
    left_out = f" Left out {len(others)} other file{'s' * (len(others) > 1)}." if others else ""
    typer.echo(printable(f"Imported {dir} into {repository!r}: {summary.line()}{left_out}"))
    if not summary.all_good:
        raise typer.Exit(1)


def _say(line: str) -> None:
    # print finds sys.stderr when called, which the bar replaces to show lines above itself;
    # typer.echo would write to the terminal beneath the bar, mangling both. The line quotes
    # file names and the server's words: neither may drive the terminal.
    print(printable(line), file=sys.stderr, flush=True)
