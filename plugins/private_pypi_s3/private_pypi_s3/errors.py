"""How S3 answers become the backend contract's errors.

Failures of the store (network, credentials, permissions, a missing bucket) become
``S3StoreError``, an ``OSError``: the server answers 503 with Retry-After and a fixed text, and
logs the message once per outage. Messages are for that log: they name the operation, the key
and botocore's reason (which may name the endpoint), never a credential or a signed URL.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from botocore.exceptions import BotoCoreError, ClientError

MISSING_CODES = frozenset({"NoSuchKey", "NotFound", "404"})


class S3StoreError(OSError):
    """The S3 store failed or refused a request; trying again later may help."""


def http_status(error: ClientError) -> int:
    return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def is_missing(error: ClientError) -> bool:
    """The object does not exist (a missing bucket is a configuration fault, not this)."""
    return error.response.get("Error", {}).get("Code") in MISSING_CODES


def is_not_modified(error: ClientError) -> bool:
    """An ``If-None-Match`` read found the object unchanged (HTTP 304)."""
    return http_status(error) == 304


def is_precondition_failed(error: ClientError) -> bool:
    """An ``If-Match`` / ``If-None-Match`` condition did not hold (HTTP 412)."""
    return http_status(error) == 412


def is_conditional_conflict(error: ClientError) -> bool:
    """AWS answers 409 ConditionalRequestConflict while another conditional write to the same
    key is in flight."""
    return http_status(error) == 409


@contextmanager
def store_errors(action: str) -> Iterator[None]:
    """Turn botocore errors escaping the block into ``S3StoreError`` naming ``action``."""
    try:
        yield
    except (ClientError, BotoCoreError) as error:
        raise S3StoreError(f"S3 store: {action} failed: {error}") from error
