"""What ``S3Backend`` does, with boto3 (see ``backend``)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from boto3.s3.transfer import create_transfer_manager
from botocore.exceptions import ClientError

from private_pypi_core.api import (
    DistFile,
    FileExists,
    IndexConflict,
    IndexFile,
    StoredFile,
)
from private_pypi_s3.client import TRANSFER_CONFIG, make_clients
from private_pypi_s3.config import S3Config
from private_pypi_s3.errors import (
    S3StoreError,
    is_conditional_conflict,
    is_missing,
    is_not_modified,
    is_precondition_failed,
    store_errors,
)
from private_pypi_s3.stream import object_stream

if TYPE_CHECKING:
    from mypy_boto3_s3.type_defs import GetObjectRequestTypeDef, PutObjectRequestTypeDef

INDEX_KEY = "index.json"
INDEX_PARTS_FOLDER = ".index-parts"  # a project's folder never starts with "."


class BucketObjects:
    """The backend's operations, as boto3 requests on the repository's bucket and prefix."""

    def __init__(self, config: S3Config) -> None:
        self.s3_config = config
        self.bucket = config.bucket
        self.clients = make_clients(config)
        self._index_key = self._key(INDEX_KEY)
        # The last index read or written, answered again while the store says 304.
        self._last_index: IndexFile | None = None

    def list_files(self) -> Iterator[StoredFile]:
        root = self._key("")
        paginator = self.clients.client.get_paginator("list_objects_v2")
        with store_errors(f"listing {self._where(root)}"):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=root):
                for item in page.get("Contents", []):
                    parts = item["Key"].removeprefix(root).split("/")
                    if len(parts) != 2 or not all(parts) or parts[0] == INDEX_PARTS_FOLDER:
                        continue  # the index and its parts, or an object not written here
                    yield StoredFile(
                        filename=parts[1],
                        size=item["Size"],
                        upload_time=item["LastModified"].astimezone(UTC),
                    )

    def open_file(self, dist: DistFile) -> BinaryIO:
        key = self.object_key(dist)
        with store_errors(f"reading {self._where(key)}"):
            try:
                response = self.clients.client.get_object(Bucket=self.bucket, Key=key)
            except ClientError as error:
                if is_missing(error):
                    raise FileNotFoundError(self._where(key)) from None
                raise
        return object_stream(response["Body"], self._where(key))

    def write_file(self, dist: DistFile, source: Path) -> None:
        key = self.object_key(dist)
        # The create-only client makes the final request of the upload conditional.
        with (
            store_errors(f"uploading {self._where(key)}"),
            create_transfer_manager(self.clients.create_only, TRANSFER_CONFIG) as transfers,
        ):
            try:
                transfers.upload(str(source), self.bucket, key).result()
            except ClientError as error:
                if is_precondition_failed(error):
                    raise FileExists(dist.filename) from None
                if is_conditional_conflict(error):
                    raise S3StoreError(
                        f"another upload of {dist.filename!r} is in progress; try again"
                    ) from None
                raise

    def delete_file(self, dist: DistFile) -> None:
        key = self.object_key(dist)
        client = self.clients.client
        # S3 deletes a missing key without complaint; the contract wants to hear of it.
        with store_errors(f"deleting {self._where(key)}"):
            try:
                client.head_object(Bucket=self.bucket, Key=key)
            except ClientError as error:
                if is_missing(error):
                    raise FileNotFoundError(self._where(key)) from None
                raise
            client.delete_object(Bucket=self.bucket, Key=key)

    def read_index(self) -> IndexFile | None:
        last = self._last_index
        request: GetObjectRequestTypeDef = {"Bucket": self.bucket, "Key": self._index_key}
        if last is not None:
            request["IfNoneMatch"] = last.version
        with store_errors(f"reading {self._where(self._index_key)}"):
            try:
                response = self.clients.client.get_object(**request)
            except ClientError as error:
                if last is not None and is_not_modified(error):
                    return last
                if is_missing(error):
                    self._last_index = None
                    return None
                raise
            with response["Body"] as body:
                data = body.read()
        self._last_index = IndexFile(data=data, version=response["ETag"])
        return self._last_index

    def write_index(self, data: bytes, replaces: IndexFile | None) -> None:
        request: PutObjectRequestTypeDef = {
            "Bucket": self.bucket,
            "Key": self._index_key,
            "Body": data,
            "ContentType": "application/json",
        }
        if replaces is None:
            request["IfNoneMatch"] = "*"
        else:
            request["IfMatch"] = replaces.version
        with store_errors(f"writing {self._where(self._index_key)}"):
            try:
                response = self.clients.client.put_object(**request)
            except ClientError as error:
                # 404: AWS's answer to If-Match on a key that is gone.
                if (
                    is_precondition_failed(error)
                    or is_conditional_conflict(error)
                    or is_missing(error)
                ):
                    raise IndexConflict(self._where(self._index_key)) from None
                raise
        self._last_index = IndexFile(data=data, version=response["ETag"])

    def read_index_part(self, name: str) -> bytes | None:
        key = self._key(INDEX_PARTS_FOLDER, name)
        with store_errors(f"reading {self._where(key)}"):
            try:
                response = self.clients.client.get_object(Bucket=self.bucket, Key=key)
            except ClientError as error:
                if is_missing(error):
                    return None
                raise
            with response["Body"] as body:
                return body.read()

    def write_index_part(self, name: str, data: bytes) -> None:
        key = self._key(INDEX_PARTS_FOLDER, name)
        with store_errors(f"writing {self._where(key)}"):
            self.clients.client.put_object(
                Bucket=self.bucket, Key=key, Body=data, ContentType="application/json"
            )

    def delete_index_part(self, name: str) -> None:
        key = self._key(INDEX_PARTS_FOLDER, name)
        with store_errors(f"deleting {self._where(key)}"):
            self.clients.client.delete_object(Bucket=self.bucket, Key=key)

    def download_url(self, dist: DistFile) -> str | None:
        if self.s3_config.download == "stream":
            return None
        key = self.object_key(dist)
        with store_errors(f"signing a download of {self._where(key)}"):
            return self.clients.client.generate_presigned_url(
                "get_object",
                Params={"Bucket": self.bucket, "Key": key},
                ExpiresIn=self.s3_config.presigned_url_expires,
            )

    def object_key(self, dist: DistFile) -> str:
        """Where ``dist`` is stored in the bucket."""
        return self._key(dist.project, dist.filename)

    def _key(self, *parts: str) -> str:
        """The object key of ``parts`` under the prefix; ``_key("")`` is the prefix + "/"."""
        prefix = self.s3_config.key_prefix
        return "/".join([prefix, *parts]) if prefix else "/".join(parts)

    def _where(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"
