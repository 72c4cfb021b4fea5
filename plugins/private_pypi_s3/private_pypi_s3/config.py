"""The settings of an S3 package repository, checked when the config is loaded."""

from __future__ import annotations

import os
from dataclasses import dataclass

from private_pypi_core.api import BackendConfig, ConfigError

ADDRESSING_STYLES = ("auto", "path", "virtual")
DOWNLOAD_MODES = ("redirect", "stream")


@dataclass(frozen=True, kw_only=True)
class S3Config(BackendConfig):
    """One ``type = "s3"`` table of the config.

    The S3 access key never appears here: boto3 finds it in the environment (its standard
    chain), or in the two variables that ``access_key_id_env`` / ``secret_access_key_env`` name.
    """

    # The store's keys come from the server's environment: no key that chooses a bucket,
    # endpoint or variable may be set without an admin credential.
    anonymous_keys = BackendConfig.anonymous_keys | {"download", "presigned_url_expires"}

    bucket: str
    prefix: str = ""  # objects live under <prefix>/; "" for the bucket's root
    endpoint_url: str = ""  # "" for AWS S3
    region: str = ""  # "" for boto3's default (AWS_DEFAULT_REGION, ~/.aws/config)
    addressing_style: str = "auto"
    download: str = "redirect"  # or "stream": the bytes pass through the server
    presigned_url_expires: int = 300  # seconds a download redirect stays valid
    access_key_id_env: str = ""
    secret_access_key_env: str = ""

    def __post_init__(self) -> None:
        # The core prefixes these messages with the config file and the repository.
        _check_choice("addressing_style", self.addressing_style, ADDRESSING_STYLES)
        _check_choice("download", self.download, DOWNLOAD_MODES)
        if not self.bucket:
            raise ConfigError("key 'bucket' must name a bucket")
        if self.presigned_url_expires <= 0:
            raise ConfigError("key 'presigned_url_expires' must be positive")
        if bool(self.access_key_id_env) != bool(self.secret_access_key_env):
            raise ConfigError(
                "give both 'access_key_id_env' and 'secret_access_key_env', or neither "
                "(then boto3's standard chain: AWS_ACCESS_KEY_ID, ~/.aws, an instance role...)"
            )

    @property
    def key_prefix(self) -> str:
        """``prefix`` without stray slashes, so keys never hold an empty path segment."""
        return self.prefix.strip("/")

    def credentials(self) -> tuple[str | None, str | None]:
        """The access key id and secret from the named variables, or ``(None, None)`` for
        boto3's standard chain."""
        if not self.access_key_id_env:
            return None, None
        return _env(self.name, self.access_key_id_env), _env(self.name, self.secret_access_key_env)


def _env(repository: str, variable: str) -> str:
    value = os.environ.get(variable, "")
    if not value:
        raise ConfigError(
            f"repository [{repository}]: environment variable {variable!r} is not set"
        )
    return value


def _check_choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        allowed = ", ".join(choices)
        raise ConfigError(f"key {key!r} must be one of {allowed}; got {value!r}")
