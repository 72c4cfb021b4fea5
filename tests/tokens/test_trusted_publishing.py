"""Trusted publishing (OIDC) the way CI does it: a local issuer shaped like GitHub Actions'
(``oidc_issuer``), our server over TLS with a test CA, and the real ``uv publish
--trusted-publishing always``; then the exchange pypa's publish action makes, with requests and
the real twine. Every refusal is answered as pypi.org answers it, and nothing is fetched for
an issuer no repository trusts."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
import trustme

from private_pypi_core.config import repository_settings
from private_pypi_core.errors import ConfigError
from private_pypi_core.issuer_keys import REFETCH_COOLDOWN_SECONDS
from private_pypi_core.oidc import MINTED_LIFETIME
from private_pypi_core.repository import Repository
from private_pypi_core.tokens import TokenRecord, new_token
from tests.dists import make_wheel
from tests.e2e.clients import client_env, executable, report, run, sha256_of, twine_upload
from tests.hardening.support import HTTP_TIMEOUT, ServerSpec, fs_table
from tests.protocol.attestations import attestation
from tests.server import RunningServer, free_port, private_pypi_command, start_server
from tests.tokens.oidc_issuer import OidcIssuer, SigningKey

AUDIENCE = "private-pypi"  # the server's default
WORKFLOW_REF = "acme/widgets/.github/workflows/release.yml@refs/heads/main"
STARTUP_SECONDS = 30
UNREACHABLE = f"https://127.0.0.1:{free_port()}"  # an issuer that is down


@dataclass
class HttpsServer(RunningServer):
    ca_file: str = ""  # the test CA's certificate, trusted for this server

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return requests.get(
            f"{self.url}{path}", verify=self.ca_file, timeout=HTTP_TIMEOUT, **kwargs
        )

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return requests.post(
            f"{self.url}{path}", verify=self.ca_file, timeout=HTTP_TIMEOUT, **kwargs
        )

    def audit(self, repository: str = "local") -> list[dict[str, Any]]:
        path = self.root / "audit" / f"{repository}.jsonl"
        lines = path.read_text().splitlines() if path.exists() else []
        return [json.loads(line) for line in lines]

    def token_ids(self, repository: str = "local") -> set[str]:
        listed = self.get("/_/tokens/", auth=(repository, self.secret(repository, "write")))
        assert listed.ok, listed.text
        return {token["id"] for token in listed.json()["tokens"]}

    def files(self, repository: str, project: str) -> set[str]:
        page = self.get(
            f"/simple/{project}/",
            auth=(repository, self.secret(repository, "read")),
            headers={"Accept": "application/vnd.pypi.simple.v1+json"},
        )
        return {file["filename"] for file in page.json()["files"]} if page.ok else set()


def start_https_server(spec: ServerSpec, ca: trustme.CA, ca_file: Path) -> HttpsServer:
    """``private_pypi server`` with gunicorn's TLS, trusting the test CA (``SSL_CERT_FILE``
    only) for its own fetches."""
    certfile, keyfile = spec.root.parent / "server.pem", spec.root.parent / "server.key"
    certificate = ca.issue_cert("127.0.0.1")
    certificate.cert_chain_pems[0].write_to_path(str(certfile))
    certificate.private_key_pem.write_to_path(str(keyfile))
    port = free_port()
    flags = spec.args(f"--certfile={certfile}", f"--keyfile={keyfile}")
    argv = [*private_pypi_command(), "server", str(spec.root), "--host", "127.0.0.1"]
    environ = {
        k: v for k, v in os.environ.items() if k not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
    }
    log_path = spec.root.parent / "server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [*argv, f"--port={port}", *flags],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**environ, "SSL_CERT_FILE": str(ca_file)},
            start_new_session=True,
        )
    server = HttpsServer(spec.root, port, process, log_path, ca_file=str(ca_file))
    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        try:
            server.get("/login/")
            break
        except requests.ConnectionError:
            if process.poll() is not None or time.monotonic() > deadline:
                server.stop()
                raise RuntimeError(f"the server did not start:\n{server.log()}") from None
            time.sleep(0.1)
    spec.know_secrets(server)
    return server


def publisher(issuer: str, projects: list[str], **claims: str) -> dict[str, object]:
    return {"issuer": issuer, "claims": claims, "projects": projects}


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture(scope="module")
def issuer(ca: trustme.CA) -> Iterator[OidcIssuer]:
    running = OidcIssuer(ca)
    yield running
    running.stop()


@pytest.fixture(autouse=True)
def release_job(issuer: OidcIssuer) -> None:
    """Each test starts as the release workflow of acme/widgets."""
    issuer.job.repository = "acme/widgets"
    issuer.job.workflow = "release.yml"


@pytest.fixture(scope="module")
def server(
    ca: trustme.CA, ca_file: Path, issuer: OidcIssuer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HttpsServer]:
    tables = {
        "local": fs_table(
            "local",
            trusted_publishers=[
                publisher(
                    issuer.url, ["acme-*"], repository="acme/widgets", workflow_ref=WORKFLOW_REF
                )
            ],
        ),
        "other": fs_table(
            "other", trusted_publishers=[publisher(issuer.url, ["*"], repository="acme/other")]
        ),
        "stranded": fs_table(
            "stranded", trusted_publishers=[publisher(UNREACHABLE, ["*"], repository="a/b")]
        ),
    }
    spec = ServerSpec(tmp_path_factory.mktemp("oidc") / "root", tables, ("--workers=2",))
    running = start_https_server(spec, ca, ca_file)
    yield running
    running.stop()


def mint(server: HttpsServer, id_token: str) -> requests.Response:
    return server.post("/_/oidc/mint-token", json={"token": id_token})


def minted(server: HttpsServer, issuer: OidcIssuer) -> str:
    answer = mint(server, issuer.id_token(AUDIENCE))
    assert answer.status_code == 200, answer.text
    return str(answer.json()["token"])


def upload(server: HttpsServer, token: str, wheel: Path) -> requests.Response:
    """A legacy-API upload, as twine sends it."""
    name, version = wheel.name.split("-")[:2]
    return server.post(
        "/simple/",
        auth=("__token__", token),
        data={
            ":action": "file_upload",
            "protocol_version": "1",
            "name": name,
            "version": version,
            "filetype": "bdist_wheel",
            "sha256_digest": sha256_of(wheel),
        },
        files={"content": (wheel.name, wheel.read_bytes(), "application/octet-stream")},
    )


def refusal(code: str, description: str) -> dict[str, object]:
    return {
        "message": "Token request failed",
        "errors": [{"code": code, "description": description}],
    }


def test_uv_publishes_with_trusted_publishing_and_burns_its_token(
    server: HttpsServer, issuer: OidcIssuer, ca_file: Path, tmp_path: Path
) -> None:
    wheel = make_wheel(tmp_path / "dist", "acme-widgets", "1.0")
    env = client_env(tmp_path, **issuer.actions_env(), SSL_CERT_FILE=str(ca_file))
    earlier = len(server.audit())
    published = run(
        [
            executable("uv"),
            "publish",
            "--no-config",
            "--no-progress",
            "--trusted-publishing",
            "always",
            "--publish-url",
            server.simple_url,
            str(wheel),
        ],
        env,
    )
    assert published.returncode == 0, report(published)
    assert wheel.name in server.files("local", "acme-widgets")
    assert "/_apis/pipelines/idtoken" in issuer.requests  # uv asked the CI for its ID token

    events = server.audit()[earlier:]
    exchange = next(e for e in events if e["action"] == "trusted publishing")
    token_id = exchange["token"]
    assert exchange["identity"] == (
        f"trusted publisher {issuer.url} (repository=acme/widgets, workflow_ref={WORKFLOW_REF})"
    )
    assert exchange["client"] == "127.0.0.1"
    assert exchange["claims"]["sub"] == "repo:acme/widgets:ref:refs/heads/main"
    datetime.fromisoformat(exchange["time"])
    uploaded = next(e for e in events if e["action"] == "upload" and e["project"] == "acme-widgets")
    assert uploaded["identity"].startswith(f"token {token_id} (trusted publishing: ")
    burned = [e for e in events if e["action"] == "burn token"]
    assert [e["token"] for e in burned] == [token_id]  # uv burned it after the upload
    assert token_id not in server.token_ids()
    trail = (server.root / "audit" / "local.jsonl").read_text()
    assert "pypp_" not in trail and "eyJ" not in trail  # no token, no JWT


def test_the_exchange_of_pypas_publish_action_then_twine(
    server: HttpsServer, issuer: OidcIssuer, ca_file: Path, tmp_path: Path
) -> None:
    """What pypa/gh-action-pypi-publish does: the audience from the index's host, an ID token
    for it from the CI, mint-token, then ``twine upload -u __token__``."""
    repository_url = server.simple_url
    oidc = f"https://{urlsplit(repository_url).netloc}/_/oidc"
    audience = requests.get(f"{oidc}/audience", verify=str(ca_file), timeout=HTTP_TIMEOUT)
    assert audience.status_code == 200
    assert audience.json() == {"audience": AUDIENCE}
    asked = requests.get(
        f"{issuer.request_url}&audience={audience.json()['audience']}",
        headers={"Authorization": f"bearer {issuer.request_token}"},
        verify=str(ca_file),
        timeout=HTTP_TIMEOUT,
    )
    id_token = asked.json()["value"]
    answer = requests.post(
        f"{oidc}/mint-token", json={"token": id_token}, verify=str(ca_file), timeout=HTTP_TIMEOUT
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body) == {"success", "token", "expires"} and body["success"] is True
    token = body["token"]
    assert token.startswith("pypp_")
    assert abs(body["expires"] - (time.time() + 15 * 60)) < 60
    assert answer.headers["Cache-Control"] == "no-store"

    wheel = make_wheel(tmp_path / "dist", "acme-gadgets", "2.0")
    env = client_env(tmp_path, REQUESTS_CA_BUNDLE=str(ca_file))
    uploaded = twine_upload(server, [wheel], token, env, username="__token__")
    assert uploaded.returncode == 0, report(uploaded)
    assert wheel.name in server.files("local", "acme-gadgets")
    assert server.get("/simple/", auth=("__token__", token)).status_code == 403  # upload only

    burned = server.post("/_/oidc/burn-token", json={"token": token})
    assert burned.status_code == 200 and burned.json() == {"success": True}
    # No worker's credential cache keeps it working.
    statuses = {upload(server, token, wheel).status_code for _ in range(10)}
    assert statuses == {401}
    trail = (server.root / "audit" / "local.jsonl").read_text()
    assert token not in trail and token.split("_", 2)[2] not in trail and id_token not in trail


def test_the_provenance_of_a_trusted_publishers_upload_names_the_publisher(
    server: HttpsServer, issuer: OidcIssuer, ca_file: Path, tmp_path: Path
) -> None:
    """An upload with PEP 740 attestations (``twine --attestations``) made with a minted token:
    the provenance the index serves names the publisher the ID token proved."""
    token = minted(server, issuer)
    wheel = make_wheel(tmp_path / "dist", "acme-attested", "1.0")
    attested = wheel.parent / f"{wheel.name}.publish.attestation"
    attested.write_text(json.dumps(attestation(wheel)))
    env = client_env(tmp_path, REQUESTS_CA_BUNDLE=str(ca_file))
    uploaded = twine_upload(
        server, [wheel, attested], token, env, "--attestations", username="__token__"
    )
    assert uploaded.returncode == 0, report(uploaded)
    provenance = server.get(
        f"/integrity/acme-attested/1.0/{wheel.name}/provenance",
        auth=("local", server.secret("local", "read")),
    )
    assert provenance.status_code == 200, provenance.text
    (bundle,) = provenance.json()["attestation_bundles"]
    assert bundle["publisher"]["kind"] == issuer.url
    assert bundle["publisher"]["claims"] == {"sub": "repo:acme/widgets:ref:refs/heads/main"}


def test_the_publisher_names_the_repository(
    server: HttpsServer, issuer: OidcIssuer, tmp_path: Path
) -> None:
    issuer.job.repository = "acme/other"
    token = minted(server, issuer)
    wheel = make_wheel(tmp_path / "dist", "anything-else", "1.0")
    assert upload(server, token, wheel).status_code == 200
    assert wheel.name in server.files("other", "anything-else")
    assert not server.files("local", "anything-else")
    (exchange,) = [e for e in server.audit("other") if e["action"] == "trusted publishing"]
    assert exchange["repository"] == "other"


def test_a_minted_token_uploads_only_its_publishers_projects(
    server: HttpsServer, issuer: OidcIssuer, tmp_path: Path
) -> None:
    token = minted(server, issuer)
    refused = upload(server, token, make_wheel(tmp_path / "dist", "not-acme", "1.0"))
    assert refused.status_code == 403
    assert "may upload only projects matching acme-*, not 'not-acme'" in refused.text
    assert upload(server, token, make_wheel(tmp_path / "dist", "acme-ok", "1.0")).ok


def _expired(issuer: OidcIssuer) -> str:
    now = int(time.time())
    return issuer.id_token(AUDIENCE, iat=now - 900, nbf=now - 900, exp=now - 300)


def _known_kid_other_key(issuer: OidcIssuer) -> str:
    impostor = SigningKey.generate()
    impostor.kid = issuer.signing_key.kid
    return issuer.id_token(AUDIENCE, key=impostor)


def _unsigned(issuer: OidcIssuer) -> str:
    forged = issuer.id_token(AUDIENCE).split(".")
    header = json.dumps({"alg": "none", "typ": "JWT", "kid": issuer.signing_key.kid}).encode()
    encoded = base64.urlsafe_b64encode(header).rstrip(b"=").decode()
    return f"{encoded}.{forged[1]}."


REFUSALS: dict[str, tuple[Callable[[OidcIssuer], str], str, str]] = {
    "wrong repository claim": (
        lambda issuer: issuer.id_token(AUDIENCE, repository="evil/widgets"),
        "invalid-publisher",
        "valid token, but no corresponding publisher (no trusted publisher of ISSUER matches "
        "its claims)",
    ),
    "wrong workflow": (
        lambda issuer: issuer.id_token(
            AUDIENCE, workflow_ref="acme/widgets/.github/workflows/ci.yml@refs/heads/main"
        ),
        "invalid-publisher",
        "valid token, but no corresponding publisher",
    ),
    "expired": (_expired, "invalid-token", "malformed or invalid token: Signature has expired"),
    "not yet valid": (
        lambda issuer: issuer.id_token(AUDIENCE, nbf=int(time.time()) + 600),
        "invalid-token",
        "malformed or invalid token: The token is not yet valid (nbf)",
    ),
    "wrong audience": (
        lambda issuer: issuer.id_token("pypi"),
        "invalid-token",
        "malformed or invalid token: Audience doesn't match",
    ),
    "no expiry": (
        lambda issuer: issuer.id_token(AUDIENCE, exp=None),
        "invalid-token",
        'malformed or invalid token: Token is missing the "exp" claim',
    ),
    "a key not in the JWKS": (
        lambda issuer: issuer.id_token(AUDIENCE, key=SigningKey.generate()),
        "invalid-token",
        "malformed or invalid token: its key is not in the issuer's JWKS",
    ),
    "a known key id on another key": (
        _known_kid_other_key,
        "invalid-token",
        "malformed or invalid token: Signature verification failed",
    ),
    "unsigned": (_unsigned, "invalid-token", "malformed or invalid token"),
    "not a JWT": (lambda issuer: "not-a-jwt", "invalid-payload", "malformed JWT"),
}


@pytest.mark.parametrize("case", REFUSALS, ids=list(REFUSALS))
def test_an_id_token_that_proves_nothing_is_refused_as_pypi_refuses_it(
    server: HttpsServer, issuer: OidcIssuer, case: str
) -> None:
    make, code, description = REFUSALS[case]
    before = server.token_ids()
    answer = mint(server, make(issuer))
    assert answer.status_code == 422
    errors = answer.json()["errors"]
    assert answer.json() == refusal(code, errors[0]["description"])
    assert errors[0]["description"].startswith(description.replace("ISSUER", issuer.url))
    assert server.token_ids() == before


def test_an_id_token_is_exchanged_once(server: HttpsServer, issuer: OidcIssuer) -> None:
    id_token = issuer.id_token(AUDIENCE)
    assert mint(server, id_token).status_code == 200
    replays = [mint(server, id_token) for _ in range(6)]  # whichever worker answers
    assert {r.status_code for r in replays} == {422}
    assert replays[0].json() == refusal("invalid-reuse-token", "invalid token: already used")


def test_an_unknown_issuer_is_refused_before_anything_is_fetched(
    server: HttpsServer, ca: trustme.CA
) -> None:
    stranger = OidcIssuer(ca)
    try:
        answer = mint(server, stranger.id_token(AUDIENCE))
        assert answer.status_code == 422
        assert answer.json() == refusal("invalid-payload", "unknown trusted publishing issuer")
        assert stranger.requests == []
    finally:
        stranger.stop()


def test_an_issuer_out_of_reach_is_answered_503_to_try_again(
    server: HttpsServer, issuer: OidcIssuer
) -> None:
    answer = mint(server, issuer.id_token(AUDIENCE, iss=UNREACHABLE, repository="a/b"))
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "30"
    description = f"the keys of issuer {UNREACHABLE} cannot be fetched right now; try again later"
    assert answer.json() == refusal("issuer-unavailable", description)


def test_a_rotated_key_is_fetched_when_a_token_names_it(
    server: HttpsServer, issuer: OidcIssuer
) -> None:
    assert mint(server, issuer.id_token(AUDIENCE)).status_code == 200  # keys cached
    issuer.rotate()
    time.sleep(REFETCH_COOLDOWN_SECONDS)
    assert mint(server, issuer.id_token(AUDIENCE)).status_code == 200


def test_malformed_requests_are_answered_in_pypis_shape(server: HttpsServer) -> None:
    payload = refusal("invalid-payload", 'POST /_/oidc/mint-token takes JSON: {"token": "..."}')
    for body in (b"not json", b'{"token": 5}', b"[]"):
        answer = server.post("/_/oidc/mint-token", data=body)
        assert answer.status_code == 422 and answer.json() == payload
    too_large = server.post("/_/oidc/mint-token", json={"token": "x" * (20 << 10)})
    assert too_large.status_code == 413
    cross_site = server.post(
        "/_/oidc/mint-token", json={"token": "x"}, headers={"Origin": "https://evil.example"}
    )
    assert cross_site.status_code == 403
    unknown = server.post("/_/oidc/burn-token", json={"token": "pypp_000000000000_" + "A" * 43})
    assert unknown.status_code == 200 and unknown.json() == {"success": True}


def test_the_audience_is_the_servers_own(tmp_path: Path) -> None:
    spec = ServerSpec(tmp_path / "root", {"local": fs_table("local")})
    for flags, audience in [
        (("--url=https://pypi.example.com",), "pypi.example.com"),
        (("--oidc_audience=acme-index",), "acme-index"),
    ]:
        running = spec.start(*flags)
        try:
            answer = requests.get(f"{running.url}/_/oidc/audience", timeout=HTTP_TIMEOUT)
            assert answer.json() == {"audience": audience}
        finally:
            running.stop()


GITHUB = "https://token.actions.githubusercontent.com"


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (publisher("http://ci.example", ["*"], sub="x"), "'issuer' must be the issuer's https URL"),
        (publisher(GITHUB, ["acme-*"]), "'claims' must be a table"),
        (
            publisher(GITHUB, ["acme-*"], workflow_ref=WORKFLOW_REF),
            "must name the claim 'repository'",
        ),
        (publisher(GITHUB, ["acme-*"], repository="a/b", aud="x"), "claim 'aud' is checked"),
        (publisher(GITHUB, [], repository="a/b"), "'projects' must list the projects"),
        (publisher(GITHUB, ["Acme Widgets"], repository="a/b"), "'projects' must list"),
        ({**publisher(GITHUB, ["*"], repository="a/b"), "ref": "main"}, "unknown key 'ref'"),
    ],
)
def test_a_trusted_publisher_is_checked_when_the_config_is_loaded(
    entry: dict[str, object], message: str
) -> None:
    table = {"type": "file_system", "write_secret": "x", "trusted_publishers": [entry]}
    with pytest.raises(ConfigError) as raised:
        repository_settings("team", table, label="config.toml")
    assert str(raised.value).startswith("config.toml: repository [team]: trusted_publishers[0]: ")
    assert message in str(raised.value)


def test_a_config_posted_without_a_credential_may_not_trust_publishers(tmp_path: Path) -> None:
    pristine = start_server(tmp_path / "root", "--extra_index_url=")
    try:
        config = (
            '[team]\ntype = "file_system"\n[[team.trusted_publishers]]\n'
            f'issuer = "{GITHUB}"\nclaims = {{ repository = "acme/widgets" }}\n'
            'projects = ["*"]\n'
        )
        answer = requests.post(
            f"{pristine.url}/initialize/",
            data={"config": config, "admin_secret": ""},
            timeout=HTTP_TIMEOUT,
        )
        assert answer.status_code == 403
        assert "key 'trusted_publishers' needs an admin credential" in answer.text
    finally:
        pristine.stop()


def minted_record(id_token: str, until: datetime) -> TokenRecord:
    """The record of a token minted for ``id_token``, which expires (as does the token, when
    that is in the past) at ``until``."""
    _, record = new_token(
        scopes=("upload",), projects=("*",), lifetime=MINTED_LIFETIME, note="", created_by=""
    )
    return dataclasses.replace(
        record,
        expires=min(until, record.expires or until),
        id_token_sha256=hashlib.sha256(id_token.encode()).hexdigest(),
        id_token_expires=until,
    )


def test_spent_minted_tokens_leave_the_index_and_an_id_token_counts_once(tmp_path: Path) -> None:
    config = repository_settings("team", {"type": "file_system"}, label="config.toml").config
    repository = Repository(config, tmp_path)
    now = datetime.now(UTC)
    spent = minted_record("spent", now - timedelta(hours=1))
    assert repository.add_minted_token(spent)
    fresh = minted_record("fresh", now + timedelta(minutes=5))
    assert repository.add_minted_token(fresh)
    assert set(repository.index.tokens) == {fresh.id}  # the spent one went with that write
    assert not repository.add_minted_token(minted_record("fresh", now + timedelta(minutes=5)))
    assert set(repository.index.tokens) == {fresh.id}
