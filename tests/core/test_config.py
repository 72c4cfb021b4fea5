"""Loading the package repository config and the admin secret: what works and every error."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from private_pypi_core.auth_provider import Credential
from private_pypi_core.errors import ConfigError
from private_pypi_core.state import Configuration, Origin, ServerSettings, load_configuration

READ_SECRET = "read-5ecret-that-must-not-leak"
WRITE_SECRET = "write-5ecret-that-must-not-leak"

GOOD_CONFIG = f"""\
[team]
type = "file_system"
read_secret = "{READ_SECRET}"
write_secret = "{WRITE_SECRET}"
max_file_bytes = 1000
"""
GOOD_ADMIN = f"""\
[team]
type = "file_system"
raw = "{WRITE_SECRET}"
"""


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def load(tmp_path: Path, config: str, admin: str | None = GOOD_ADMIN) -> Configuration:
    """Load ``config`` (and ``admin``) as a server started with --config/--admin_secret would."""
    settings = ServerSettings(
        root=tmp_path / "root",
        config=write(tmp_path / "config.toml", config),
        admin_secret=None if admin is None else write(tmp_path / "admin.toml", admin),
    )
    return load_configuration(settings)


def config_error(tmp_path: Path, config: str, admin: str | None = GOOD_ADMIN) -> str:
    with pytest.raises(ConfigError) as raised:
        load(tmp_path, config, admin)
    return str(raised.value)


def test_good_config_serves_its_repositories_with_their_settings(tmp_path: Path) -> None:
    configuration = load_configuration(
        ServerSettings(
            root=tmp_path / "root",
            config=write(tmp_path / "config.toml", GOOD_CONFIG),
            admin_secret=write(tmp_path / "admin.toml", GOOD_ADMIN),
        )
    )
    assert configuration.origin is Origin.FLAGS
    assert list(configuration.repositories) == ["team"]
    team = configuration.repositories["team"]
    assert team.config.max_file_bytes == 1000
    assert team.config.sync_index_interval == 60  # the default
    assert configuration.admin_secrets["team"].secret == WRITE_SECRET


def test_unknown_backend_type_lists_the_installed_backends(tmp_path: Path) -> None:
    message = config_error(tmp_path, '[team]\ntype = "no_such_store"\n', admin=None)
    assert str(tmp_path / "config.toml") in message
    assert "[team]" in message
    assert "'no_such_store'" in message
    assert "installed backends: " in message and "file_system" in message


def test_missing_type_names_the_file_repository_and_key(tmp_path: Path) -> None:
    message = config_error(tmp_path, f'[team]\nread_secret = "{READ_SECRET}"\n', admin=None)
    assert str(tmp_path / "config.toml") in message
    assert "[team]" in message
    assert "'type'" in message
    assert READ_SECRET not in message


def test_wrongly_typed_value_names_the_file_repository_key_and_expected_type(
    tmp_path: Path,
) -> None:
    config = GOOD_CONFIG.replace("max_file_bytes = 1000", 'max_file_bytes = "big"')
    message = config_error(tmp_path, config)
    assert str(tmp_path / "config.toml") in message
    assert "[team]" in message
    assert "'max_file_bytes'" in message
    assert "an integer" in message
    assert "'big'" in message


def test_boolean_is_not_accepted_as_an_integer(tmp_path: Path) -> None:
    config = GOOD_CONFIG.replace("max_file_bytes = 1000", "max_file_bytes = true")
    assert "'max_file_bytes'" in config_error(tmp_path, config)


def test_wrongly_typed_secret_is_named_but_not_shown(tmp_path: Path) -> None:
    config = GOOD_CONFIG.replace(f'read_secret = "{READ_SECRET}"', "read_secret = 918273645")
    message = config_error(tmp_path, config)
    assert "'read_secret'" in message
    assert "a string" in message
    assert "918273645" not in message


def test_unknown_key_is_named_with_the_known_keys_but_its_value_is_not_shown(
    tmp_path: Path,
) -> None:
    config = GOOD_CONFIG.replace("write_secret", "write_secrte")
    message = config_error(tmp_path, config)
    assert str(tmp_path / "config.toml") in message
    assert "[team]" in message
    assert "unknown key 'write_secrte'" in message
    assert "write_secret" in message.split("known keys:")[1]
    assert WRITE_SECRET not in message


def test_malformed_toml_names_the_file_and_the_position(tmp_path: Path) -> None:
    message = config_error(tmp_path, '[team\ntype = "file_system"\n', admin=None)
    assert str(tmp_path / "config.toml") in message
    assert "not valid TOML" in message
    assert "line 1" in message


def test_malformed_admin_secret_names_its_file(tmp_path: Path) -> None:
    message = config_error(tmp_path, GOOD_CONFIG, admin="[team\n")
    assert str(tmp_path / "admin.toml") in message
    assert "not valid TOML" in message


def test_missing_config_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.toml"
    with pytest.raises(ConfigError, match=r"nowhere\.toml"):
        load_configuration(ServerSettings(root=tmp_path / "root", config=str(missing)))


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ("", "no package repository is configured"),
        ("team = 1\n", "'team' must be a table"),
    ],
    ids=["empty", "not-a-table"],
)
def test_config_without_usable_repositories_is_refused(
    tmp_path: Path, config: str, expected: str
) -> None:
    message = config_error(tmp_path, config, admin=None)
    assert expected in message
    assert str(tmp_path / "config.toml") in message


def test_admin_secret_env_reads_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEAM_ADMIN_SECRET", WRITE_SECRET)
    admin = '[team]\ntype = "file_system"\nenv = "TEAM_ADMIN_SECRET"\n'
    configuration = load(tmp_path, GOOD_CONFIG, admin)
    assert configuration.admin_secrets["team"].secret == WRITE_SECRET


def test_admin_secret_env_naming_an_unset_variable_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TEAM_ADMIN_SECRET", raising=False)
    admin = '[team]\ntype = "file_system"\nenv = "TEAM_ADMIN_SECRET"\n'
    message = config_error(tmp_path, GOOD_CONFIG, admin)
    assert str(tmp_path / "admin.toml") in message
    assert "'TEAM_ADMIN_SECRET' is not set" in message


@pytest.mark.parametrize(
    ("admin", "expected"),
    [
        ('[team]\ntype = "file_system"\n', "needs key 'raw'"),
        ('[other]\ntype = "file_system"\nraw = "x"\n', "[other] is not in"),
        ('[team]\ntype = "no_such_store"\nraw = "x"\n', "has type 'no_such_store'"),
        ('[team]\nraw = "x"\n', "missing key 'type'"),
    ],
    ids=["no-secret", "unknown-repository", "other-type", "no-type"],
)
def test_admin_secret_that_does_not_fit_the_config_is_refused(
    tmp_path: Path, admin: str, expected: str
) -> None:
    message = config_error(tmp_path, GOOD_CONFIG, admin)
    assert expected in message
    assert str(tmp_path / "admin.toml") in message


def test_repr_of_a_configuration_never_shows_secrets(tmp_path: Path) -> None:
    configuration = load(tmp_path, GOOD_CONFIG)
    team = configuration.repositories["team"]
    shown = " ".join(
        [
            repr(configuration),
            repr(team.config),
            repr(configuration.admin_secrets),
            repr(Credential(username="team", secret=WRITE_SECRET)),
        ]
    )
    assert "team" in shown
    assert READ_SECRET not in shown
    assert WRITE_SECRET not in shown


def test_repr_of_server_settings_with_config_text_never_shows_secrets(tmp_path: Path) -> None:
    settings = ServerSettings(
        root=tmp_path,
        config=GOOD_CONFIG,
        admin_secret=GOOD_ADMIN,
        config_or_admin_secret_can_be_text=True,
    )
    assert WRITE_SECRET not in repr(settings)
    assert READ_SECRET not in repr(settings)


def test_config_text_is_accepted_when_allowed(tmp_path: Path) -> None:
    configuration = load_configuration(
        ServerSettings(
            root=tmp_path,
            config=GOOD_CONFIG,
            admin_secret=GOOD_ADMIN,
            config_or_admin_secret_can_be_text=True,
        )
    )
    assert list(configuration.repositories) == ["team"]


def test_config_text_is_refused_when_not_allowed(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_configuration(ServerSettings(root=tmp_path, config=GOOD_CONFIG))


def test_config_text_refused_when_not_allowed_does_not_echo_its_secrets(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        load_configuration(ServerSettings(root=tmp_path, config=GOOD_CONFIG))
    assert READ_SECRET not in str(raised.value)
    assert WRITE_SECRET not in str(raised.value)


def test_config_text_of_two_repositories_is_accepted_when_allowed(tmp_path: Path) -> None:
    text = "".join(
        f'[repo{i}]\ntype = "file_system"\nread_secret = "{"r" * 43}"\n'
        f'write_secret = "{"w" * 43}"\n'
        for i in range(2)
    )
    configuration = load_configuration(
        ServerSettings(root=tmp_path, config=text, config_or_admin_secret_can_be_text=True)
    )
    assert list(configuration.repositories) == ["repo0", "repo1"]


def test_embedded_default_secrets_are_private_files_generated_once(tmp_path: Path) -> None:
    settings = ServerSettings(root=tmp_path / "root")
    configuration = load_configuration(settings)
    assert configuration.origin is Origin.EMBEDDED
    assert list(configuration.repositories) == ["local"]
    for path in (settings.embedded_config, settings.embedded_admin_secret):
        assert path.stat().st_mode & 0o777 == 0o600, path

    config = tomllib.loads(settings.embedded_config.read_text())["local"]
    admin = tomllib.loads(settings.embedded_admin_secret.read_text())["local"]
    assert config["read_secret"] != config["write_secret"]
    assert len(config["read_secret"]) >= 32
    assert admin["raw"] == config["write_secret"]

    again = load_configuration(settings)
    assert tomllib.loads(settings.embedded_config.read_text())["local"] == config
    assert again.admin_secrets["local"].secret == config["write_secret"]
