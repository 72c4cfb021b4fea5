"""private-pypi: a private Python package index on pluggable storage backends."""
