"""The server's settings, apart from the configuration they lead to (``state``): the gunicorn
master holds them for its workers, and imports nothing more for that (``serve``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from private_pypi_core.metrics import MetricsSettings

DEFAULT_OIDC_AUDIENCE = "private-pypi"


@dataclass(frozen=True)
class ServerSettings:
    """The ``private_pypi server`` flags that every worker needs."""

    root: Path
    config: str | None = field(default=None, repr=False)  # may be TOML text with secrets
    admin_secret: str | None = field(default=None, repr=False)
    config_or_admin_secret_can_be_text: bool = False
    auth_read_expires: int = 3600
    auth_write_expires: int = 300
    extra_index_url: str = "https://pypi.org/simple/"
    debug: bool = False
    session_max_age: int = 8 * 3600
    # Where clients reach the server (e.g. https://pypi.example.com), for absolute URLs in
    # answers; "" for path-only URLs. Never taken from a request's Host header.
    public_url: str = ""
    # The audience trusted publishing's ID tokens must name (``oidc``).
    oidc_audience: str = DEFAULT_OIDC_AUDIENCE
    # Where /metrics is served (``--metrics``); None: nowhere, and nothing is counted.
    metrics: MetricsSettings | None = None

    @cached_property
    def embedded_config(self) -> Path:
        return self.root / "embedded" / "config.toml"

    @cached_property
    def embedded_admin_secret(self) -> Path:
        return self.root / "embedded" / "admin_secret.toml"

    @cached_property
    def initialized_config(self) -> Path:
        return self.root / "initialized" / "config.toml"

    @cached_property
    def initialized_admin_secret(self) -> Path:
        return self.root / "initialized" / "admin_secret.toml"


def settings_document(settings: ServerSettings) -> dict[str, Any]:
    """``settings`` as a JSON object (``settings_from`` reads it back)."""
    return dataclasses.asdict(settings) | {"root": str(settings.root)}


def settings_from(document: Mapping[str, Any]) -> ServerSettings:
    metrics = document["metrics"]
    if metrics is not None:
        bind = metrics["bind"]
        metrics = MetricsSettings(metrics["secret"], (bind[0], bind[1]) if bind else None)
    return ServerSettings(**{**document, "root": Path(document["root"]), "metrics": metrics})
