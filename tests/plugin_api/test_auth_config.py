"""A repository's ``auth`` list and its providers' settings tables, as the config loader checks
them: clear errors naming the file, the table and the key."""

from __future__ import annotations

import pytest
import tomli_w

from private_pypi_core.config import (
    ConfigError,
    check_anonymous,
    load_repositories,
    parse_toml,
)

LABEL = "config.toml"


def load(table: dict[str, object]) -> None:
    load_repositories(parse_toml(tomli_w.dumps({"team": table}), label=LABEL))


def fs(**extra: object) -> dict[str, object]:
    return {"type": "file_system", "read_secret": "r", **extra}


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (fs(auth=["ldap"]), "repository [team]: unknown auth provider 'ldap' (installed auth"),
        (fs(auth="secrets"), "key 'auth' must be a list of a string"),
        (fs(auth=["htpasswd"]), "[team.htpasswd]: key 'path' must name the htpasswd file"),
        (
            fs(auth=["htpasswd"], htpasswd={"path": "x", "writer": ["a"]}),
            "[team.htpasswd]: unknown key 'writer' (known keys: path, writers)",
        ),
        (fs(htpasswd={"path": "x"}), "repository [team]: unknown key 'htpasswd'"),
    ],
    ids=["unknown-provider", "not-a-list", "missing-setting", "unknown-setting", "unused-table"],
)
def test_auth_mistakes_are_named(table: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(table)
    assert message in str(caught.value)
    assert str(caught.value).startswith(LABEL)


def test_providers_and_their_settings_are_loaded_in_order() -> None:
    table = fs(auth=["htpasswd", "secrets"], htpasswd={"path": "users", "writers": ["alice"]})
    loaded = load_repositories(parse_toml(tomli_w.dumps({"team": table}), label=LABEL))["team"]
    assert list(loaded.auth) == ["htpasswd", "secrets"]
    assert loaded.config.auth == ["htpasswd", "secrets"]


def test_a_provider_setting_that_names_a_path_needs_an_admin() -> None:
    table = fs(auth=["htpasswd"], htpasswd={"path": "/etc/shadow"})
    config = parse_toml(tomli_w.dumps({"team": table}), label=LABEL)
    admin = parse_toml('[team]\ntype = "file_system"\nraw = "w"\n', label="admin")
    with pytest.raises(ConfigError) as caught:
        check_anonymous(config, admin)
    assert "[team.htpasswd]: key 'path' needs an admin credential" in str(caught.value)
