"""PEP 740 with real clients: ``twine upload --attestations`` sends a file's attestations, the
server checks each against the file (a mismatch is refused with a 400 that says why), keeps
them, and serves the provenance object where pypi.org does, advertised on the file's link
(``data-provenance`` in HTML, ``provenance`` in JSON) and fetched by pypi-simple."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ec
from pypi_attestations import Attestation, Provenance
from pypi_simple import ACCEPT_HTML_ONLY, ACCEPT_JSON_ONLY, PyPISimple

from private_pypi_core.auth_provider import Grant
from private_pypi_core.repository import Repository
from tests.e2e.clients import client_env, output, report, twine_upload
from tests.protocol.attestations import attestation, github_claims, statement_of
from tests.protocol.dists_extra import make_rich_wheel
from tests.protocol.helpers import JSON_V1, LocalIndex, cli, parse_html, sha256_hex
from tests.server import RunningServer, start_server

pytestmark = pytest.mark.e2e

INTEGRITY_JSON = "application/vnd.pypi.integrity.v1+json"
CREDENTIAL_PUBLISHER = {"kind": "private-pypi-credential", "claims": {}}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A server that knows its public URL, as provenance URLs must be fully qualified."""
    running = start_server(
        tmp_path_factory.mktemp("provenance") / "root", "--extra_index_url=", public_url=True
    )
    yield running
    running.stop()


def upload(server: RunningServer, path: Path, attestations: object) -> requests.Response:
    """The legacy upload of ``path`` with an ``attestations`` field (JSON unless a string)."""
    field = attestations if isinstance(attestations, str) else json.dumps(attestations)
    return requests.post(
        server.simple_url,
        data={":action": "file_upload", "protocol_version": "1", "attestations": field},
        files={"content": (path.name, path.read_bytes(), "application/octet-stream")},
        auth=("local", server.secret("local", "write")),
        timeout=30,
    )


def provenance_url(server: RunningServer, project: str, version: str, filename: str) -> str:
    return f"{server.url}/integrity/{project}/{version}/{filename}/provenance"


def read(server: RunningServer, url: str, **headers: str) -> requests.Response:
    return requests.get(url, auth=("local", server.secret()), headers=headers, timeout=10)


def simple_client(server: RunningServer) -> PyPISimple:
    return PyPISimple(server.simple_url, auth=("local", server.secret()))


def test_twine_uploads_attestations_and_both_page_formats_link_the_provenance(
    server: RunningServer, tmp_path: Path
) -> None:
    env = client_env(tmp_path)
    wheel = make_rich_wheel(tmp_path / "dist", "attested-pkg", "1.0")
    sent = attestation(wheel)
    attestation_file = wheel.parent / f"{wheel.name}.publish.attestation"
    attestation_file.write_text(json.dumps(sent))
    plain = make_rich_wheel(tmp_path / "plain", "attested-pkg", "2.0")

    result = twine_upload(
        server, [wheel, attestation_file], server.secret("local", "write"), env, "--attestations"
    )
    assert result.returncode == 0, report(result)
    result = twine_upload(server, [plain], server.secret("local", "write"), env)
    assert result.returncode == 0, report(result)

    expected = provenance_url(server, "attested-pkg", "1.0", wheel.name)
    with simple_client(server) as client:
        for accept in (ACCEPT_JSON_ONLY, ACCEPT_HTML_ONLY):
            page = client.get_project_page("attested-pkg", accept=accept)
            assert page.repository_version == "1.4"
            urls = {package.filename: package.provenance_url for package in page.packages}
            assert urls == {wheel.name: expected, plain.name: None}, accept
        served = client.get_provenance(next(p for p in page.packages if p.filename == wheel.name))
    assert served == {
        "version": 1,
        "attestation_bundles": [{"publisher": CREDENTIAL_PUBLISHER, "attestations": [sent]}],
    }
    kept = Attestation.model_validate(served["attestation_bundles"][0]["attestations"][0])
    assert kept.statement["subject"] == [
        {"name": wheel.name, "digest": {"sha256": sha256_hex(wheel.read_bytes())}}
    ]
    response = read(server, expected)
    assert response.headers["Content-Type"] == INTEGRITY_JSON
    plain_url = provenance_url(server, "attested-pkg", "2.0", plain.name)
    assert read(server, plain_url).status_code == 404


CASES = {
    "another file's name": (
        lambda w: [attestation(w, subject="attested_refused-9.0-py3-none-any.whl")],
        "its subject is 'attested_refused-9.0-py3-none-any.whl'",
    ),
    "another file's sha256": (
        lambda w: [attestation(w, sha256="0" * 64)],
        "its subject's sha256 is not the sha256 of the file",
    ),
    "a signature by another key": (
        lambda w: [attestation(w, signing_key=ec.generate_private_key(ec.SECP256R1()))],
        "its signature does not verify with its certificate's key",
    ),
    "an unknown predicate": (
        lambda w: [attestation(w, predicate_type="https://example.com/claims/v1")],
        "is not one PyPI knows",
    ),
    "a second attestation that does not match": (
        lambda w: [attestation(w), attestation(w, sha256="1" * 64)],
        "Attestation 2 does not attest",
    ),
    "no envelope": (
        lambda w: [{k: v for k, v in attestation(w).items() if k != "envelope"}],
        "Attestation 1 is not a PEP 740 attestation object (envelope: Field required)",
    ),
    "an empty list": (lambda w: [], "one or more attestations"),
    "not JSON": (lambda w: "[{", "not valid JSON"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_attestations_that_do_not_attest_the_file_are_refused_and_nothing_is_published(
    server: RunningServer, tmp_path: Path, case: str
) -> None:
    project = "attested-refused"
    wheel = make_rich_wheel(tmp_path / "dist", project, "1.0")
    make, message = CASES[case]
    response = upload(server, wheel, make(wheel))
    assert response.status_code == 400, response.text
    assert message in response.text
    page = read(server, f"{server.simple_url}{project}/")
    assert page.status_code == 404 or wheel.name not in page.text


def test_twine_says_why_an_attestation_was_refused(server: RunningServer, tmp_path: Path) -> None:
    env = client_env(tmp_path)
    wheel = make_rich_wheel(tmp_path / "dist", "attested-twine", "1.0")
    attestation_file = wheel.parent / f"{wheel.name}.publish.attestation"
    attestation_file.write_text(json.dumps(attestation(wheel, sha256="2" * 64)))
    result = twine_upload(
        server,
        [wheel, attestation_file],
        server.secret("local", "write"),
        env,
        "--attestations",
        "--verbose",
    )
    assert result.returncode != 0, report(result)
    assert "400" in output(result), report(result)
    assert "sha256 is not the sha256 of the file" in output(result), report(result)
    assert read(server, f"{server.simple_url}attested-twine/").status_code == 404


def test_a_subject_naming_the_file_in_another_spelling_is_the_file(
    server: RunningServer, tmp_path: Path
) -> None:
    """PEP 740: names are compared as parsed, so ``Attested_Spelling-1.0.0`` is the file."""
    wheel = make_rich_wheel(tmp_path / "dist", "attested-spelling", "1.0")
    subject = "Attested_Spelling-1.0.0-py3-none-any.whl"
    response = upload(server, wheel, [attestation(wheel, subject=subject)])
    assert response.status_code == 200, response.text


def test_update_index_keeps_the_provenance(server: RunningServer, tmp_path: Path) -> None:
    wheel = make_rich_wheel(tmp_path / "dist", "attested-kept", "1.0")
    sent = attestation(wheel)
    assert upload(server, wheel, [sent]).status_code == 200
    result = cli(
        "update_index",
        "file_system",
        "local",
        "--secret",
        server.secret("local", "write"),
        "--root",
        str(server.root),
        "--config",
        str(server.root / "embedded" / "config.toml"),
        env=client_env(tmp_path),
    )
    assert result.returncode == 0, report(result)
    page = read(server, f"{server.simple_url}attested-kept/", Accept=JSON_V1).json()
    expected = provenance_url(server, "attested-kept", "1.0", wheel.name)
    assert [file["provenance"] for file in page["files"]] == [expected]
    assert read(server, expected).json()["attestation_bundles"][0]["attestations"] == [sent]


def test_without_its_public_url_the_server_serves_the_provenance_but_links_none(
    index: LocalIndex, tmp_path: Path
) -> None:
    """A provenance URL must be fully qualified, and the server never takes its own URL from
    the Host header a client chooses: without ``--url`` the links name no provenance."""
    wheel = make_rich_wheel(tmp_path / "dist", "attested-local", "1.0")
    assert index.upload(wheel, attestations=json.dumps([attestation(wheel)])).status_code == 200
    anchor = parse_html(index.get("/simple/attested-local/").text).anchors[wheel.name]
    assert "data-provenance" not in anchor.attributes
    page = json.loads(index.get("/simple/attested-local/", JSON_V1).text)
    assert page["files"][0]["provenance"] is None
    served = index.get(f"/integrity/attested-local/1.0/{wheel.name}/provenance")
    assert served.status_code == 200
    assert served.json["attestation_bundles"][0]["publisher"] == CREDENTIAL_PUBLISHER


PUBLISHER = {
    "kind": "GitHub",
    "repository": "acme/widgets",
    "workflow": "release.yml",
    "environment": "pypi",
}


@pytest.fixture
def trusted_publisher(index: LocalIndex, monkeypatch: pytest.MonkeyPatch) -> LocalIndex:
    """``index``, where the write secret acts for a GitHub trusted publisher: the grant that
    trusted publishing's upload tokens carry (``Grant.publisher``)."""
    authenticate = Repository.authenticate

    def as_publisher(self: Repository, credential: Any) -> Grant | None:
        grant = authenticate(self, credential)
        if grant is None or credential.secret != index.write_secret:
            return grant
        return Grant(access=grant.access, identity="trusted publisher", publisher=PUBLISHER)

    monkeypatch.setattr(Repository, "authenticate", as_publisher)
    return index


def test_the_provenance_of_a_trusted_publishers_upload_names_the_publisher(
    trusted_publisher: LocalIndex, tmp_path: Path
) -> None:
    wheel = make_rich_wheel(tmp_path / "dist", "attested-ci", "1.0")
    sent = attestation(wheel, claims=github_claims("acme/widgets", "release.yml"))
    result = trusted_publisher.upload(wheel, attestations=json.dumps([sent]))
    assert result.status_code == 200, result.text
    served = trusted_publisher.get(f"/integrity/attested-ci/1.0/{wheel.name}/provenance").json
    assert served["attestation_bundles"] == [
        {"publisher": {**PUBLISHER, "claims": {}}, "attestations": [sent]}
    ]
    parsed = Provenance.model_validate(served)  # pypi-attestations reads the publisher
    assert parsed.attestation_bundles[0].publisher.repository == "acme/widgets"
    root = json.loads((trusted_publisher.storage / "index.json").read_text())
    assert root["format"] == 4  # a server that drops the publisher refuses the file
    [part] = (trusted_publisher.storage / ".index-parts").iterdir()
    assert json.loads(part.read_text())["files"][wheel.name]["publisher"] == PUBLISHER


@pytest.mark.parametrize(
    ("claims", "wrong"),
    [
        (github_claims("acme/other", "release.yml"), "source repository"),
        (github_claims("acme/widgets", "nightly.yml"), "workflow"),
        ({}, "OIDC issuer"),
    ],
    ids=["another repository", "another workflow", "no claims"],
)
def test_a_trusted_publishers_attestation_signed_for_another_workflow_is_refused(
    trusted_publisher: LocalIndex, tmp_path: Path, claims: dict[str, str], wrong: str
) -> None:
    wheel = make_rich_wheel(tmp_path / "dist", "attested-ci-wrong", "1.0")
    sent = attestation(wheel, claims=claims)
    result = trusted_publisher.upload(wheel, attestations=json.dumps([sent]))
    assert result.status_code == 400, result.text
    assert f"its certificate's {wrong} is" in result.text
    assert trusted_publisher.stored_files() == []


def test_the_attestations_built_here_are_ones_pypi_attestations_reads(tmp_path: Path) -> None:
    """The refusals above are of well-formed attestations, not of a malformed test double."""
    wheel = make_rich_wheel(tmp_path / "dist", "attested-shape", "1.0")
    sent = attestation(wheel, claims=github_claims("acme/widgets", "release.yml"))
    parsed = Attestation.model_validate(sent)
    assert parsed.statement == statement_of(sent)
    assert parsed.certificate_claims == github_claims("acme/widgets", "release.yml")
