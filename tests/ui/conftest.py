from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.hardening.support import ServerSpec, upload
from tests.server import RunningServer
from tests.ui.support import MARKDOWN_README, RST_README, two_repositories, wheel

# What the real server of these tests holds in repository "local" (besides what it shows).
PROJECTS = sorted(["gadget-lib", "widget-toolkit", *(f"tool-{n}" for n in range(1, 6))])


@pytest.fixture(scope="package")
def ui_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A real server (one worker) whose repository ``local`` holds ``PROJECTS``:
    widget-toolkit with a Markdown README in 1.1, gadget-lib with a reStructuredText one; and
    ``other`` holds hidden-thing."""
    folder = tmp_path_factory.mktemp("ui-server")
    spec = ServerSpec(folder / "root", two_repositories(), ("--workers=1",))
    server = spec.start()
    try:
        dists = [
            wheel("widget_toolkit", "1.0", description="The first widgets."),
            wheel(
                "widget_toolkit",
                "1.1",
                description=MARKDOWN_README,
                content_type="text/markdown",
                summary="Widgets for everyone",
                requires_python=">=3.9",
            ),
            wheel("gadget_lib", "2.0", description=RST_README, content_type="text/x-rst"),
            *(wheel(f"tool_{n}", "0.1", summary=f"Tool number {n}") for n in range(1, 6)),
        ]
        for filename, data in dists:
            name, version = filename.split("-")[:2]
            assert upload(server, filename, data, name=name, version=version).status_code == 200
        filename, data = wheel("hidden_thing", "1.0")
        response = upload(
            server, filename, data, name="hidden_thing", version="1.0", repository="other"
        )
        assert response.status_code == 200
        yield server
    finally:
        server.stop()
