"""The boto3 clients of one repository, built from its settings.

Two clients share one session: ``client`` for every plain request, and ``create_only`` whose
every object write carries ``If-None-Match: *``. boto3's managed transfers (multipart,
streamed from disk) pass no such argument themselves, so the condition is added to the
requests they send: ``PutObject`` for a small file, ``CompleteMultipartUpload`` for a large
one. Either is refused with 412 when the key exists, so a stored file is never replaced.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, cast

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

from private_pypi_s3.config import S3Config

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

AddressingStyle = Literal["auto", "path", "virtual"]

MB = 1 << 20
# S3's smallest part is 5 MiB. Parts are read from disk as they are sent, PART_THREADS at once.
PART_BYTES = 8 * MB
PART_THREADS = 4
CREATE_ONLY_OPERATIONS = ("PutObject", "CompleteMultipartUpload")

TRANSFER_CONFIG = TransferConfig(
    # The CRT transfer client, which boto3 may pick, sends its own requests past the
    # botocore events that add If-None-Match: never let it.
    preferred_transfer_client="classic",
    multipart_threshold=PART_BYTES,
    multipart_chunksize=PART_BYTES,
    max_concurrency=PART_THREADS,
)


@dataclass(frozen=True)
class Clients:
    """The repository's two clients (see the module docstring)."""

    client: S3Client
    create_only: S3Client


def make_clients(config: S3Config) -> Clients:
    access_key_id, secret_access_key = config.credentials()
    session = boto3.session.Session(
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
        region_name=config.region or None,
    )
    addressing_style = cast("AddressingStyle", config.addressing_style)  # checked by S3Config
    botocore_config = Config(
        signature_version="s3v4",  # presigned URLs too; AWS refuses SigV2 in most regions
        s3={"addressing_style": addressing_style},
        retries={"mode": "standard", "max_attempts": 3},
        connect_timeout=10,
        read_timeout=60,
        max_pool_connections=32,
        # Many S3-compatible stores reject the CRC trailers boto3 would add by default.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )

    def new_client() -> S3Client:
        return session.client(
            "s3", endpoint_url=config.endpoint_url or None, config=botocore_config
        )

    create_only = new_client()
    for operation in CREATE_ONLY_OPERATIONS:
        create_only.meta.events.register(
            f"before-parameter-build.s3.{operation}", _add_if_none_match
        )
    return Clients(client=new_client(), create_only=create_only)


def _add_if_none_match(params: dict[str, Any], **kwargs: Any) -> None:
    params["IfNoneMatch"] = "*"
