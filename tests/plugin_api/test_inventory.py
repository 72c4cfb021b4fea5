"""``private_pypi plugins`` lists what is installed, as a user would check it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PRIVATE_PYPI = Path(sys.executable).parent / "private_pypi"


def test_plugins_lists_each_plugin_its_version_and_what_it_adds() -> None:
    result = subprocess.run(
        [str(PRIVATE_PYPI), "plugins"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "250"},
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    rows = {line.split("│")[1].strip(): line for line in result.stdout.splitlines() if "│" in line}
    expected = {
        "private_pypi_core.secrets": ["private-pypi-core", "secrets"],
        "fs": ["private-pypi-fs", "file_system", "fs.init_pkg_repo"],
        "s3": ["private-pypi-s3", "s3"],
        "github": ["private-pypi-github", "github", "github.init_pkg_repo"],
        "htpasswd": ["private-pypi-htpasswd 0.1.0", "htpasswd"],
        "webhook": ["private-pypi-webhook 0.1.0", "index changes"],
    }
    for plugin, fragments in expected.items():
        assert plugin in rows, result.stdout
        for fragment in fragments:
            assert fragment in rows[plugin], (fragment, rows[plugin])
