"""The auth provider interface: what a plugin implements to say what a credential may do.

A package repository's config names its providers, in the order they are asked::

    [team]
    type = "file_system"
    auth = ["htpasswd", "secrets"]   # default: the backend's own (``Backend.default_auth``)
    read_secret = "..."              # the settings of "secrets", the core's provider

    [team.htpasswd]                  # a provider's own settings: a table named after it
    path = "team.htpasswd"           # relative paths are relative to the server's ROOT

The first definite answer wins: ``Access.READ`` or ``Access.WRITE`` opens the repository,
``Access.NONE`` refuses the credential outright; ``None`` means "not mine", and the next
provider is asked. A provider that raises refuses the credential (the error is logged): it
never turns into an error page.

Which repository a credential is for: the HTTP basic-auth username, when it names a
repository (the repository's secrets, as pip and twine send them), or its part after the
last ``@`` (``alice@team``: user ``alice`` of repository ``team``). Any other credential, and
a bearer token, is offered to every repository's providers in config order; the first that
opens one wins.
"""

from __future__ import annotations

import builtins
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from private_pypi_core.backend import Access, Backend


@dataclass(frozen=True)
class Credential:
    """What a request presented: HTTP basic auth's username and password, or a bearer
    token (``username`` is ``None`` then)."""

    username: str | None
    secret: str = field(repr=False)


@dataclass(frozen=True)
class Grant:
    """A definite yes with its limits, for a credential that may do less than its access level
    allows (a provider may answer a bare ``Access`` instead: all of that level, in every
    project).

    ``scopes`` are the actions it may take among ``read``, ``upload`` and ``yank`` (``None``:
    all that ``access`` allows); ``projects`` are globs of normalised project names it is
    limited to (empty: every project); ``identity`` names it in the audit log, never with a
    secret. With ``cacheable=False`` the core asks again on every request, so a revocation
    takes effect at once. ``publisher`` is set for a trusted publisher's credential: its PEP 740
    publisher object (``{"kind": "GitHub", "repository": "octo/app", "workflow":
    "release.yml", "environment": "pypi", "claims": {...}}``), recorded with every file it
    uploads and named in their provenance.
    """

    access: Access
    identity: str
    scopes: frozenset[str] | None = None
    projects: tuple[str, ...] = ()
    expires: datetime | None = None
    cacheable: bool = True
    publisher: Mapping[str, Any] | None = field(default=None, hash=False)


@dataclass(frozen=True)
class ProviderSettings:
    """A provider's settings, the keys of its ``[<repository>.<provider>]`` table: subclass it
    as a frozen dataclass, as a backend does ``BackendConfig``. Mark secrets ``repr=False``."""

    #: The keys a config posted to a pristine server without a credential may set; see
    #: ``BackendConfig.anonymous_keys``. A path (an htpasswd file) is not one of them.
    anonymous_keys: ClassVar[frozenset[str]] = frozenset()


class AuthProvider(ABC):
    """Says what a credential may do in one package repository.

    One instance serves one repository for the life of a server process (or a command), and
    may be called from several threads at once. ``authenticate`` is plain synchronous Python,
    called from a thread pool: a network call is fine, but keep it within a few seconds (the
    request waits); the core caches positive answers for ``--auth_read_expires`` /
    ``--auth_write_expires`` seconds.
    """

    #: The name a repository's ``auth`` list uses.
    name: ClassVar[str]
    #: The dataclass of this provider's settings.
    settings_class: ClassVar[builtins.type[ProviderSettings]] = ProviderSettings

    def __init__(
        self, repository: str, settings: ProviderSettings, backend: Backend, root: Path
    ) -> None:
        """``repository`` is the package repository's name, ``backend`` its storage (for a
        provider that keeps its data there), ``root`` the server's ROOT folder."""
        self.repository = repository
        self.settings = settings
        self.backend = backend
        self.root = root

    @abstractmethod
    def authenticate(self, credential: Credential) -> Access | Grant | None:
        """What ``credential`` may do in this repository (an ``Access``, or a ``Grant`` with
        limits); ``None`` if this provider does not know it. Compare secrets with
        ``hmac.compare_digest``; refuse an empty secret."""
