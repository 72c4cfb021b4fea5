"""Benchmark harness: private-pypi against pypiserver and nginx (``python -m bench``)."""
