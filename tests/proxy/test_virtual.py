"""Virtual repositories: private members and a proxy under one URL, through a real server and
real installers."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.dists import make_wheel
from tests.e2e.clients import client_env, pip_install, report, uv_pip_install
from tests.proxy.support import (
    SECRETS,
    auth,
    download,
    page,
    proxy_table,
    serving,
    team_table,
    upload,
    virtual_table,
)
from tests.proxy.upstream import StaticUpstream
from tests.server import RunningServer


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[StaticUpstream]:
    with StaticUpstream(tmp_path / "upstream") as served:
        dist = tmp_path / "public"
        served.add(make_wheel(dist, "dep-pkg", "1.0"))
        served.add(make_wheel(dist, "dep-pkg", "1.1"))
        # A public project of the same name as a private one, with a tempting version.
        served.add(make_wheel(dist, "app-pkg", "99.0", payload="from the public index"))
        yield served


def repositories(
    upstream: StaticUpstream, page_ttl: str = "10m", **virtual: object
) -> dict[str, dict[str, object]]:
    return {
        "team": team_table(),
        "pypi": proxy_table(upstream.simple_url, page_ttl=page_ttl),
        "all": virtual_table(**virtual),
    }


def versions(server: RunningServer, repository: str, project: str) -> list[str]:
    answer = page(server, repository, project)
    assert answer.status_code == 200, answer.text
    return list(answer.json()["versions"])


def test_a_private_project_is_never_merged_with_a_public_one_of_its_name(
    tmp_path: Path, upstream: StaticUpstream
) -> None:
    with serving(tmp_path / "root", repositories(upstream)) as server:
        private = make_wheel(tmp_path / "dist", "app-pkg", "1.0", requires=("dep-pkg>=1",))
        uploaded = upload(server, "all", private)  # through the virtual URL: to "team"
        assert uploaded.status_code == 200, uploaded.text
        assert versions(server, "team", "app-pkg") == ["1.0"]

        assert versions(server, "all", "app-pkg") == ["1.0"]  # 99.0 is never offered
        assert upstream.count("/simple/app-pkg/") == 0  # nor even asked for
        assert versions(server, "all", "dep-pkg") == ["1.0", "1.1"]  # public: the proxy's
        dep = download(server, "all", "dep-pkg", "dep_pkg-1.1-py3-none-any.whl")
        assert dep.status_code == 200
        refused = download(server, "all", "app-pkg", "app_pkg-99.0-py3-none-any.whl")
        assert refused.status_code == 404


def test_a_project_declared_with_tracks_is_merged_and_says_so(
    tmp_path: Path, upstream: StaticUpstream
) -> None:
    tracked = f"{upstream.simple_url}app-pkg/"
    with serving(
        tmp_path / "root", repositories(upstream, tracks={"app-pkg": [tracked]})
    ) as server:
        assert upload(server, "all", make_wheel(tmp_path / "dist", "app-pkg", "1.0")).ok
        answer = page(server, "all", "app-pkg")
        assert answer.json()["versions"] == ["1.0", "99.0"]
        assert answer.json()["meta"]["tracks"] == [tracked]
        html = page(server, "all", "app-pkg", Accept="text/html").text
        assert f'<meta name="pypi:tracks" content="{tracked}">' in html


def test_a_virtual_repository_without_upload_to_refuses_uploads(
    tmp_path: Path, upstream: StaticUpstream
) -> None:
    with serving(tmp_path / "root", repositories(upstream, upload_to="")) as server:
        refused = upload(server, "all", make_wheel(tmp_path / "dist", "app-pkg", "1.0"))
        assert refused.status_code == 403 and "names no member for uploads" in refused.text


def test_yanks_are_made_in_the_member_not_through_a_virtual_repository_or_a_proxy(
    tmp_path: Path, upstream: StaticUpstream
) -> None:
    tables = repositories(upstream)
    tables["pypi"]["write_secret"] = "pypi-write"
    with serving(tmp_path / "root", tables) as server:
        assert upload(server, "all", make_wheel(tmp_path / "dist", "app-pkg", "1.0")).ok
        assert page(server, "pypi", "dep-pkg").status_code == 200
        form = {"target": "1.0", "reason": "broken"}
        for name, secret, project, said in [
            ("all", SECRETS["all"][1], "app-pkg", "is virtual"),
            ("pypi", "pypi-write", "dep-pkg", "are the upstream's"),
        ]:
            refused = requests.post(
                f"{server.url}/yank/",
                auth=(name, secret),
                data={**form, "project": project},
                timeout=10,
            )
            assert refused.status_code == 403 and said in refused.text
        done = requests.post(
            f"{server.url}/yank/",
            auth=("team", SECRETS["team"][1]),
            data={**form, "project": "app-pkg"},
            timeout=10,
        )
        assert done.status_code == 200, done.text
        assert page(server, "all", "app-pkg").json()["files"][0]["yanked"] == "broken"


def test_a_virtual_repository_opens_with_its_own_credential_only(
    tmp_path: Path, upstream: StaticUpstream
) -> None:
    with serving(tmp_path / "root", repositories(upstream)) as server:
        assert page(server, "all", "dep-pkg").status_code == 200
        members = requests.get(
            f"{server.url}/simple/dep-pkg/", auth=("all", SECRETS["team"][0]), timeout=10
        )
        assert members.status_code == 401


@pytest.mark.parametrize("installer", ["pip", "uv"])
def test_installers_get_private_and_public_packages_from_one_url_then_from_the_cache(
    tmp_path: Path, upstream: StaticUpstream, installer: str
) -> None:
    install = pip_install if installer == "pip" else uv_pip_install
    with serving(tmp_path / "root", repositories(upstream, page_ttl="1s")) as server:
        app = make_wheel(tmp_path / "dist", "app-pkg", "1.0", requires=("dep-pkg>=1",))
        assert upload(server, "all", app).ok
        name, secret = auth("all")
        index_url = f"http://{name}:{secret}@127.0.0.1:{server.port}/simple/"

        online = tmp_path / "online"
        result = install(online, index_url, client_env(tmp_path / "first"), "app-pkg")
        assert result.returncode == 0, report(result)
        assert installed(online) == {"app_pkg-1.0", "dep_pkg-1.1"}

        upstream.stop()
        time.sleep(1.2)  # every page is due to be renewed: the upstream fails, the cache answers
        offline = tmp_path / "offline"
        result = install(offline, index_url, client_env(tmp_path / "second"), "app-pkg")
        assert result.returncode == 0, report(result)
        assert installed(offline) == {"app_pkg-1.0", "dep_pkg-1.1"}
        wheel = offline / "dep_pkg" / "__init__.py"
        assert "VERSION = '1.1'" in wheel.read_text()


def installed(target: Path) -> set[str]:
    """The distributions installed in ``target``: ``<name>-<version>``."""
    return {path.name.removesuffix(".dist-info") for path in target.glob("*.dist-info")}
