"""S3-compatible object storage backend for private-pypi."""
