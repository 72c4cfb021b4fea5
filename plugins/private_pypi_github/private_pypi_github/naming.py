"""Where a file lives on GitHub: the release of its project version, and its asset name.

One release per project version, tagged ``<project>-<version>`` (the normalised project name
and version, e.g. ``demo-pkg-1.0+abc``: a normalised version has no ``-``, so the tag is
unambiguous). Each file of that version, and each companion file such as
``<filename>.metadata``, is one asset of the release.

GitHub renames an asset whose name has special characters (``+`` of a local version, a
leading dot...), so the asset gets a name GitHub keeps as is and the true filename goes in
the asset's ``label``, which GitHub stores unchanged.
"""

from __future__ import annotations

import re

from private_pypi_core.api import DistFile

UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def release_tag(dist: DistFile) -> str:
    return f"{dist.project}-{dist.version}"


def asset_name(filename: str) -> str:
    """A name GitHub will not rename: other characters become ``.``, no dot at either end."""
    return UNSAFE.sub(".", filename).strip(".") or "file"
