"""The S3 backend's hook implementation: its backend class."""

from __future__ import annotations

from typing import TYPE_CHECKING

from private_pypi_core.api import hookimpl
from private_pypi_s3.backend import S3Backend

if TYPE_CHECKING:
    from private_pypi_core.api import Backend


@hookimpl
def private_pypi_backends() -> list[type[Backend]]:
    return [S3Backend]
