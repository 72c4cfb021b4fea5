import requests

from tests.server import RunningServer


def test_server_starts_on_embedded_default_and_asks_for_credentials(server: RunningServer) -> None:
    anonymous = requests.get(server.simple_url, timeout=5)
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Basic")
    listing = requests.get(server.simple_url, auth=("local", server.secret()), timeout=5)
    assert listing.status_code == 200
    config = server.root / "embedded" / "config.toml"
    assert config.stat().st_mode & 0o777 == 0o600
    assert server.secret() not in server.log()
    assert str(config) in server.log()
