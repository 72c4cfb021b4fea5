"""The gunicorn master of ``private_pypi server``, which ``serve.exec_master`` runs in place of
the command: ``python -m private_pypi_core.master HANDOFF_FD``."""

from __future__ import annotations

import sys

from private_pypi_core.serve import run_master

if __name__ == "__main__":
    run_master(int(sys.argv[1]))
