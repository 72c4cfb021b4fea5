"""Everything a plugin may use of the core, in one module.

A plugin (a storage backend, an auth provider, commands) imports from here, from
``private_pypi_core.hookspecs`` (the hooks it implements, with ``hookimpl``) and, in its
tests, from ``private_pypi_core.testing``. Every other module of the core is private: it may
change in any release. ``docs/plugin-api.md`` describes each name; ``tests/plugin_api``
checks that no plugin in ``plugins/`` imports anything else.
"""

from __future__ import annotations

from private_pypi_core.auth import generate_secret
from private_pypi_core.auth_provider import AuthProvider, Credential, ProviderSettings
from private_pypi_core.backend import (
    REPOSITORY_NAME,
    Access,
    Backend,
    BackendConfig,
    DistFile,
    FileExists,
    IndexConflict,
    IndexFile,
    StoredFile,
    check_repository_name,
)
from private_pypi_core.config import add_tables
from private_pypi_core.dists import normalize_project, parse_dist_filename
from private_pypi_core.errors import BadRequest, ConfigError, UserError
from private_pypi_core.events import IndexChange
from private_pypi_core.export import export_site, render_site
from private_pypi_core.files import atomic_write, create_exclusive, fsync_dir
from private_pypi_core.hookspecs import hookimpl
from private_pypi_core.index import IndexEntry, new_index_file
from private_pypi_core.progress import Progress, progress_bar

__all__ = [
    "REPOSITORY_NAME",
    "Access",
    "AuthProvider",
    "Backend",
    "BackendConfig",
    "BadRequest",
    "ConfigError",
    "Credential",
    "DistFile",
    "FileExists",
    "IndexChange",
    "IndexConflict",
    "IndexEntry",
    "IndexFile",
    "Progress",
    "ProviderSettings",
    "StoredFile",
    "UserError",
    "add_tables",
    "atomic_write",
    "check_repository_name",
    "create_exclusive",
    "export_site",
    "fsync_dir",
    "generate_secret",
    "hookimpl",
    "new_index_file",
    "normalize_project",
    "parse_dist_filename",
    "progress_bar",
    "render_site",
]
