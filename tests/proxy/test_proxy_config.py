"""The config of proxy and virtual repositories: what it takes, and each mistake named."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from private_pypi_core.config import TomlSource, load_repositories
from private_pypi_core.errors import ConfigError
from private_pypi_core.proxy.repository import ProxyRepository
from private_pypi_core.virtual import VirtualRepository
from tests.core.test_cli import run
from tests.core.test_config import load

TEAM = '[team]\ntype = "file_system"\nread_secret = "r"\nwrite_secret = "w"\n'
ADMIN = '[team]\ntype = "file_system"\nraw = "w"\n'


def test_a_proxy_and_a_virtual_repository_are_configured_like_any_other(tmp_path: Path) -> None:
    config = TEAM + (
        '[pypi]\ntype = "file_system"\nread_secret = "p"\n'
        '[pypi.proxy]\nupstream = "https://pypi.example.com/simple"\nmin_upload_age = "3d"\n'
        '[all]\ntype = "virtual"\nmembers = ["team", "pypi"]\nupload_to = "team"\n'
        'read_secret = "a"\n'
    )
    repositories = load(tmp_path, config, ADMIN).repositories
    proxy, virtual = repositories["pypi"], repositories["all"]
    assert isinstance(proxy, ProxyRepository) and isinstance(virtual, VirtualRepository)
    assert proxy.proxy.upstream == "https://pypi.example.com/simple/"
    assert proxy.proxy.cooldown.days == 3
    assert [member.name for member in virtual.members] == ["team", "pypi"]


@pytest.mark.parametrize(
    ("tables", "said"),
    [
        ('[p]\ntype = "file_system"\n[p.proxy]\npage_ttl = "10 minutes"\n', "'10m'"),
        ('[p]\ntype = "file_system"\n[p.proxy]\nupstream = "ftp://x/simple/"\n', "http(s)"),
        (
            '[p]\ntype = "file_system"\n[p.proxy]\nupstream = "https://u:Pw0rd@h:99999/"\n',
            "http(s) URL, got 'https://h:99999/'",
        ),
        ('[p]\ntype = "file_system"\n[p.proxy]\nwithout_upload_time = "maybe"\n', "'hide'"),
        ('[p]\ntype = "file_system"\n[p.proxy]\nfile_origins = ["https://h/x"]\n', "origins"),
        ('[p]\ntype = "file_system"\nproxy = "https://h/"\n', "must be a table"),
        ('[v]\ntype = "virtual"\nmembers = []\n', "at least one"),
        ('[v]\ntype = "virtual"\nmembers = ["nope"]\n', "'nope' is not a configured"),
        ('[v]\ntype = "virtual"\nmembers = ["v"]\n', "lists itself"),
        ('[v]\ntype = "virtual"\nmembers = ["team"]\nauth = ["tokens"]\n', "no API tokens"),
        ('[v]\ntype = "virtual"\nmembers = ["team"]\nupload_to = "x"\n', "not one of its"),
        (
            '[v]\ntype = "virtual"\nmembers = ["team"]\n[v.proxy]\nupstream = "https://h/"\n',
            "mirrors nothing itself",
        ),
        (
            '[p]\ntype = "file_system"\n[p.proxy]\n'
            '[v]\ntype = "virtual"\nmembers = ["p"]\nupload_to = "p"\n',
            "is a proxy, which takes no uploads",
        ),
    ],
)
def test_each_mistake_is_named(tmp_path: Path, tables: str, said: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load(tmp_path, TEAM + tables, ADMIN)
    assert said in str(raised.value)
    assert "Pw0rd" not in str(raised.value)


@pytest.mark.parametrize("name", ["pypi", "all"])
def test_update_index_and_export_refuse_a_proxy_or_a_virtual_repository(
    tmp_path: Path, name: str
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        TEAM
        + '[pypi]\ntype = "file_system"\n[pypi.proxy]\n'
        + '[all]\ntype = "virtual"\nmembers = ["team"]\n'
    )
    kind = "virtual" if name == "all" else "file_system"
    result = run("update_index", kind, name, "--secret", "w", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "nothing to rebuild" in result.stderr
    exported = run("export", kind, name, str(tmp_path / "site"), "--config", str(config))
    assert exported.returncode == 2, exported.stderr
    assert "export its members" in exported.stderr
    assert not (tmp_path / "cache").exists() and not (tmp_path / "site").exists()


def test_the_readmes_example_is_a_config_as_written() -> None:
    text = (Path(__file__).parents[2] / "README.md").read_text()
    start = text.index("## One index URL")
    block = re.compile(r"```toml\n(.*?)```", re.S).search(text, start)
    assert block is not None
    settings = load_repositories(TomlSource("README.md", tomllib.loads(block.group(1))))
    assert settings["pypi"].proxy is not None and settings["pypi"].proxy.cooldown.days == 3
    assert settings["all"].config.type == "virtual"
