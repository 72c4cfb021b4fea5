"""A gunicorn ``post_worker_init`` hook for tests: lists the modules a worker has imported
once its app is built, then each module it imports later, in
``$PRIVATE_PYPI_TEST_MODULES/<pid>.txt``, one name a line. Imports nothing beyond the standard
library: the master imports it before the fork, and all it imported would be in every worker."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

FOLDER_VARIABLE = "PRIVATE_PYPI_TEST_MODULES"
HOOK = f"{__name__}.record"


def record(worker: Any) -> None:
    path = Path(os.environ[FOLDER_VARIABLE]) / f"{os.getpid()}.txt"
    path.write_text("".join(f"{name}\n" for name in sys.modules))

    def note_import(event: str, args: tuple[Any, ...]) -> None:
        if event == "import":
            with path.open("a") as listing:
                listing.write(f"{args[0]}\n")

    # Written as each import happens: the worker is killed by its signal at the end, no
    # exit hook runs.
    sys.addaudithook(note_import)
