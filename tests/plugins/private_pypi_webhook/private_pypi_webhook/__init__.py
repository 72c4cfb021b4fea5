"""Posts every index change to the URL in ``PRIVATE_PYPI_WEBHOOK_URL`` (when set), as JSON::

{"repository": "team", "reason": "published",
 "added": ["demo-1.0.tar.gz"], "removed": [], "changed": []}
"""

from __future__ import annotations

import os

from private_pypi_core.api import IndexChange, hookimpl

URL_VARIABLE = "PRIVATE_PYPI_WEBHOOK_URL"
TIMEOUT_SECONDS = 30


@hookimpl
def private_pypi_index_changed(change: IndexChange) -> None:
    url = os.environ.get(URL_VARIABLE)
    if not url:
        return
    import requests  # only a server that posts its changes pays for it, at the first change

    document = {
        "repository": change.repository,
        "reason": change.reason,
        "added": [entry.filename for entry in change.added],
        "removed": [entry.filename for entry in change.removed],
        "changed": [entry.filename for entry in change.changed],
    }
    requests.post(url, json=document, timeout=TIMEOUT_SECONDS).raise_for_status()
