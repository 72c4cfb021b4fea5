"""GitHub backend for private-pypi: packages as release assets, the index in a branch."""
