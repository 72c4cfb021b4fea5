"""The settings of a GitHub package repository: its table in the config TOML."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from private_pypi_core.api import BackendConfig, ConfigError

DEFAULT_API_URL = "https://api.github.com"
DEFAULT_INDEX_FILENAME = "index.json"  # the core writes the index as JSON
# GitHub's own rule for owner and repository names.
NAME = re.compile(r"[A-Za-z0-9_.-]+")


@dataclass(frozen=True, kw_only=True)
class GitHubConfig(BackendConfig):
    # Not api_url (where the server sends its token) nor token_env (a variable of the server's).
    anonymous_keys = BackendConfig.anonymous_keys | {
        "owner",
        "repo",
        "branch",
        "index_filename",
        "token",
    }

    owner: str
    repo: str
    branch: str = ""  # the branch holding the index file; "" is the default branch
    index_filename: str = DEFAULT_INDEX_FILENAME
    api_url: str = DEFAULT_API_URL  # https://HOST/api/v3 for GitHub Enterprise Server
    # The server's own token (index sync, uploads, downloads): the repository's admin secret
    # (raw or env in the admin secret file, as the original tool had it), or set here, itself
    # or by the name of an environment variable.
    token: str = field(default="", repr=False)
    token_env: str = ""
    max_file_bytes: int = 2_147_483_647  # a release asset must be under 2 GiB

    def __post_init__(self) -> None:
        # The core prefixes these messages with the config file and the repository.
        for key in ("owner", "repo"):
            if not NAME.fullmatch(getattr(self, key)):
                raise ConfigError(f"key {key!r} must be a GitHub name (letters, digits, -_.)")
        if not self.index_filename or self.index_filename.startswith("/"):
            raise ConfigError("key 'index_filename' must be a path inside the repository")
        if not self.api_url.startswith(("https://", "http://")):
            raise ConfigError(f"key 'api_url' must be an http(s) URL, e.g. {DEFAULT_API_URL}")

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.repo}"

    def server_token(self, admin_secret: str | None) -> str:
        """The token the server itself uses; ``ConfigError`` when it is not available."""
        if self.token:
            return self.token
        if not self.token_env:
            if admin_secret:
                return admin_secret
            raise ConfigError(
                f"repository [{self.name}] needs the server's GitHub token: give it as the "
                "repository's entry in the admin secret file (raw or env), or set 'token_env'"
            )
        value = os.environ.get(self.token_env, "")
        if not value:
            raise ConfigError(
                f"repository [{self.name}]: environment variable {self.token_env!r} "
                "(token_env) is not set"
            )
        return value
