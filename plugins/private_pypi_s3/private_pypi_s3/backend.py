"""Packages stored as objects of an S3-compatible bucket (AWS S3, MinIO, Ceph, R2, SeaweedFS).

Layout under the repository's prefix::

    <prefix>/index.json                 the remote index file; its ETag is its version
    <prefix>/<project>/<filename>       the distribution files and their companions

Several servers share one bucket safely through conditional requests alone: a file is
written with ``If-None-Match: *`` (never overwritten) and the index with ``If-Match`` on the
ETag that was read (compare-and-swap), so the store needs no lock and no extra service.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from private_pypi_core.api import Backend, BackendConfig, DistFile, IndexFile, StoredFile
from private_pypi_s3.config import S3Config

if TYPE_CHECKING:
    from private_pypi_s3.objects import BucketObjects


class S3Backend(Backend):
    type = "s3"
    config_class = S3Config
    stores_index_parts = True

    def __init__(
        self, config: BackendConfig, root: Path, *, admin_secret: str | None = None
    ) -> None:
        super().__init__(config, root, admin_secret=admin_secret)
        assert isinstance(config, S3Config)
        # boto3 costs a process about 16 MB and a tenth of a second to import: only a server
        # with an S3 repository pays it, not every process that has this plugin installed.
        from private_pypi_s3.objects import BucketObjects

        self.objects: BucketObjects = BucketObjects(config)

    def list_files(self) -> Iterator[StoredFile]:
        return self.objects.list_files()

    def open_file(self, dist: DistFile) -> BinaryIO:
        return self.objects.open_file(dist)

    def write_file(self, dist: DistFile, source: Path) -> None:
        self.objects.write_file(dist, source)

    def delete_file(self, dist: DistFile) -> None:
        self.objects.delete_file(dist)

    def read_index(self) -> IndexFile | None:
        return self.objects.read_index()

    def write_index(self, data: bytes, replaces: IndexFile | None) -> None:
        self.objects.write_index(data, replaces)

    def read_index_part(self, name: str) -> bytes | None:
        return self.objects.read_index_part(name)

    def write_index_part(self, name: str, data: bytes) -> None:
        self.objects.write_index_part(name, data)

    def delete_index_part(self, name: str) -> None:
        self.objects.delete_index_part(name)

    def download_url(self, dist: DistFile) -> str | None:
        return self.objects.download_url(dist)
