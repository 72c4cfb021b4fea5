"""File-system storage backend for private-pypi."""
