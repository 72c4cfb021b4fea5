"""``private_pypi cache``: what a proxy repository's cache holds, and pruning it.

A proxy repository (one with a ``[<name>.proxy]`` table) stores each upstream file in its own
store the first time a client asks for it. ``stats`` tells how much that is; ``prune`` removes
cached files by age and by total size, never the index: a file removed stays listed, and is
fetched from the upstream again on its next request.

A file's companions (``<file>.metadata``, ``<file>.attestations``) go with it and count in its
size; its time is when it was cached (the store's time of the file).
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from private_pypi_core.backend import DistFile, StoredFile, check_repository_name
from private_pypi_core.errors import ConfigError, UserError

if TYPE_CHECKING:
    from private_pypi_core.progress import Progress
    from private_pypi_core.proxy.repository import ProxyRepository

SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*(?:([kmgt])(i)?)?b?", re.IGNORECASE)
SIZE_UNITS = {"k": 1, "m": 2, "g": 3, "t": 4}  # powers of 1000, or of 1024 with an "i"
BYTE_UNITS = ("kB", "MB", "GB", "TB")

cache_app = typer.Typer(
    help="The cache of a proxy repository: what it holds (stats), and removing files (prune).",
    no_args_is_help=True,
    rich_markup_mode=None,
)

Name = Annotated[str, typer.Argument(help="The proxy repository, as named in the config.")]
Root = Annotated[
    Path,
    typer.Option("--root", help="The ROOT of the server that serves the repository."),
]
Config = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="The config file the server was started with (by default, the config the "
        "server under --root serves: its embedded default, or the one posted to /initialize/).",
    ),
]


@dataclass
class Cached:
    """A cached file and its companions, as the store lists them; ``dist`` is ``None`` for a
    file whose name the core cannot parse (left alone)."""

    filename: str
    dist: DistFile | None
    file: StoredFile | None = None  # None: only companions are cached (e.g. a metadata file)
    companions: list[StoredFile] = field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(stored.size for stored in self.stored)

    @property
    def stored(self) -> list[StoredFile]:
        return ([self.file] if self.file is not None else []) + self.companions

    @property
    def shown(self) -> str:
        """The file's name, or its companions' when they are cached without it."""
        if self.file is not None:
            return self.file.filename
        return ", ".join(companion.filename for companion in self.companions)

    @property
    def cached_at(self) -> datetime:
        """When the file was cached; for companions alone, the earliest of them."""
        if self.file is not None:
            return self.file.upload_time
        return min(companion.upload_time for companion in self.companions)


@cache_app.command(name="stats")
def stats(name: Name, root: Root = Path("."), config: Config = None) -> None:
    """Show what a proxy repository's cache holds: its upstream, the projects and files its
    index lists, the files cached and their size, and the oldest and newest cached.

    Companions (core metadata and attestations stored beside a file) are counted apart from
    the files, and in the cache's total size.
    """
    from private_pypi_core.progress import progress_bar
    from private_pypi_core.proxy.settings import shown

    repository = _proxy_repository(name, root, config)
    repository.sync()  # the store's index, not a stale local copy of it
    index = repository.local.current()
    with progress_bar("Listing the cache", "files") as progress:
        cached = _cached_files(repository, progress)
    files = [item.file for item in cached if item.file is not None]
    companions = [companion for item in cached for companion in item.companions]
    times = [item.cached_at for item in cached]
    rows = [
        ("Repository", f"{name} (proxy of {shown(repository.proxy.upstream)})"),
        ("Projects listed", f"{len(index.projects):,}"),
        ("Files listed", f"{len(index.entries):,}"),
        ("Files cached", _count(len(files), sum(file.size for file in files))),
        (
            "Companions cached",
            _count(len(companions), sum(c.size for c in companions))
            + ": .metadata and .attestations files, not in the count above",
        ),
        ("Cache size", _size(sum(item.size for item in cached))),
        ("Oldest cached", _moment(min(times)) if times else "-"),
        ("Newest cached", _moment(max(times)) if times else "-"),
    ]
    width = max(len(label) for label, _ in rows) + 2
    for label, value in rows:
        typer.echo(f"{label + ':':<{width}}{value}")


@cache_app.command(name="prune")
def prune(
    name: Name,
    root: Root = Path("."),
    config: Config = None,
    older_than: Annotated[
        str | None,
        typer.Option(
            "--older_than",
            help="Remove every file cached longer ago than this: 12h, 30d, 2w...",
        ),
    ] = None,
    max_size: Annotated[
        str | None,
        typer.Option(
            "--max_size",
            help="Then remove the files cached longest ago until the cache holds at most this "
            "many bytes: 123456, 500M, 1.5G, 10G (k, M, G, T: powers of 1000; "
            "KiB, MiB, GiB, TiB: of 1024).",
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry_run", help="Say what would be removed, and remove nothing."),
    ] = False,
) -> None:
    """Remove files from a proxy repository's cache, never its index: a file removed stays
    listed, and is fetched again from the upstream on its next request.

    First every file cached longer ago than --older_than, then, those cached longest ago
    first, files until the cache holds at most --max_size; give one of them, or both. A
    file's companions (core metadata, attestations) go with it and count in its size.
    """
    from private_pypi_core.progress import progress_bar

    if older_than is None and max_size is None:
        raise ConfigError("give --older_than, --max_size or both: what to remove from the cache")
    cutoff = _cutoff(older_than) if older_than is not None else None
    limit = parse_size(max_size, key="--max_size") if max_size is not None else None
    repository = _proxy_repository(name, root, config)
    with progress_bar("Listing the cache", "files") as progress:
        cached = _cached_files(repository, progress)
    doomed = _to_remove(cached, cutoff, limit)
    if dry_run:
        for item in doomed:
            typer.echo(
                f"Would remove {item.shown} ({_bytes(item.size)}), cached {_moment(item.cached_at)}"
            )
    else:
        with progress_bar("Pruning", "files") as progress:
            progress.add_total(len(doomed))
            for item in doomed:
                _remove(repository, item)
                progress.advance()
    removed = {id(item) for item in doomed}
    kept = [item for item in cached if id(item) not in removed]
    gone = _count_files(doomed, sum(item.size for item in doomed))
    left = _count_files(kept, sum(item.size for item in kept))
    if dry_run:
        typer.echo(f"Would remove {gone} from {name!r}; {left} would remain cached.")
    else:
        remain = "remains" if sum(item.file is not None for item in kept) == 1 else "remain"
        typer.echo(f"Removed {gone} from {name!r}; {left} {remain} cached.")


def parse_size(text: str, *, key: str) -> int:
    """``"123456"`` (bytes), ``"500M"``, ``"1.5G"``, ``"10GiB"`` as a number of bytes."""
    match = SIZE.fullmatch(text.strip())
    if match is None:
        raise ConfigError(
            f"{key} must be a size such as '123456' (bytes), '500M', '1.5G' or '10GiB', "
            f"got {text!r}"
        )
    number, unit, binary = match.groups()
    scale = (1024 if binary else 1000) ** SIZE_UNITS[unit.lower()] if unit else 1
    return int(float(number) * scale)


def _cutoff(older_than: str) -> datetime:
    from private_pypi_core.proxy.settings import parse_duration

    if not older_than.strip():
        raise ConfigError("--older_than must be a duration such as '12h', '30d' or '2w', got ''")
    age = parse_duration(older_than, key="--older_than")
    return datetime.now(UTC) - age


def _proxy_repository(name: str, root: Path, config: Path | None) -> ProxyRepository:
    """The proxy repository ``name`` of ``config`` (by default, the config the server under
    ``root`` serves), opened on ``root``."""
    from private_pypi_core.config import read_toml, repository_settings
    from private_pypi_core.proxy.repository import ProxyRepository
    from private_pypi_core.state import open_repository, served_config_file

    check_repository_name(name)
    # A store that fails is this command's error, said once ("Error: ..."), not also a log line.
    logging.getLogger("private_pypi_core.outages").setLevel(logging.CRITICAL)
    root = root.resolve()
    path = config or served_config_file(root)
    if path is None:
        raise ConfigError(
            f"no config names {name!r}: give --config (the config file the server was "
            f"started with), or --root (the server's ROOT; none is served under {root})"
        )
    source = read_toml(str(path), what="config")
    table = source.data.get(name)
    if table is None:
        raise ConfigError(f"{source.label}: no repository [{name}]")
    if not isinstance(table, dict):
        raise ConfigError(f"{source.label}: {name!r} must be a table ([{name}])")
    settings = repository_settings(name, table, label=source.label)
    if settings.proxy is None:
        raise ConfigError(
            f"{name!r} is not a proxy repository ({source.label} gives it no [{name}.proxy] "
            "table): it caches nothing"
        )
    if not (root / "cache" / name).is_dir():
        raise ConfigError(
            f"no server has served {name!r} under {root} (no cache/{name} folder there): "
            "give the server's ROOT with --root"
        )
    repository = open_repository(settings, root, admin_secret=None)
    assert isinstance(repository, ProxyRepository)
    return repository


def _cached_files(repository: ProxyRepository, progress: Progress) -> list[Cached]:
    """What the cache store holds, each file with its companions."""
    from private_pypi_core.index import COMPANION_SUFFIXES

    by_name: dict[str, Cached] = {}
    for stored in _listed(repository.cache.store.list_files(), progress):
        suffix = next((s for s in COMPANION_SUFFIXES if stored.filename.endswith(s)), "")
        filename = stored.filename.removesuffix(suffix) if suffix else stored.filename
        item = by_name.get(filename)
        if item is None:
            item = by_name[filename] = Cached(filename, _parsed(filename))
        if suffix:
            item.companions.append(stored)
        else:
            item.file = stored
    return list(by_name.values())


def _listed(files: Iterable[StoredFile], progress: Progress) -> Iterable[StoredFile]:
    for stored in files:
        progress.advance()
        yield stored


def _parsed(filename: str) -> DistFile | None:
    from private_pypi_core.dists import parse_dist_filename

    try:
        return parse_dist_filename(filename)
    except UserError:
        return None


def _to_remove(cached: list[Cached], cutoff: datetime | None, limit: int | None) -> list[Cached]:
    """The files to remove: those cached before ``cutoff``, then the oldest until what is left
    holds at most ``limit`` bytes. Files whose name cannot be parsed stay (and count)."""
    removable = sorted(
        (item for item in cached if item.dist is not None), key=lambda item: item.cached_at
    )
    doomed = [item for item in removable if cutoff is not None and item.cached_at < cutoff]
    if limit is not None:
        total = sum(item.size for item in cached) - sum(item.size for item in doomed)
        for item in removable[len(doomed) :]:
            if total <= limit:
                break
            doomed.append(item)
            total -= item.size
    return doomed


def _remove(repository: ProxyRepository, item: Cached) -> None:
    """Remove a cached file and its companions; the file first, so that a crash halfway
    leaves at worst a companion, which the next prune removes."""
    assert item.dist is not None
    store = repository.cache.store
    for stored in item.stored:
        suffix = stored.filename[len(item.filename) :]
        with contextlib.suppress(FileNotFoundError):  # removed meanwhile: gone all the same
            store.delete_file(item.dist.companion(suffix) if suffix else item.dist)


def _count(count: int, size: int) -> str:
    """``3 (12.3 kB, 12,345 bytes)``: readable, and exact for choosing a ``--max_size``."""
    exact = f", {size:,} bytes" if size >= 1000 else ""
    return f"{count:,} ({_bytes(size)}{exact})"


def _size(size: int) -> str:
    return f"{_bytes(size)} ({size:,} bytes)" if size >= 1000 else _bytes(size)


def _count_files(items: list[Cached], size: int) -> str:
    """``12 files (34.5 MB)``: the files, not their companions (whose bytes count)."""
    count = sum(item.file is not None for item in items)
    return f"{count:,} file{'' if count == 1 else 's'} ({_bytes(size)})"


def _bytes(size: int) -> str:
    """``512 bytes``, ``34.5 MB``: powers of 1000, as the sizes ``--max_size`` takes."""
    if size < 1000:
        return f"{size:,} byte{'' if size == 1 else 's'}"
    value = float(size)
    for unit in BYTE_UNITS:  # noqa: B007 (the unit the loop stops at is the one shown)
        value /= 1000
        if value < 999.95:
            break
    return f"{value:,.1f} {unit}"


def _moment(moment: datetime) -> str:
    """``2025-01-31 12:00:00 UTC (3d ago)``."""
    seconds = max(0, int(time.time() - moment.timestamp()))
    for unit, length in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= length:
            age = f"{seconds // length}{unit}"
            break
    else:
        age = f"{seconds}s"
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC ({age} ago)"
