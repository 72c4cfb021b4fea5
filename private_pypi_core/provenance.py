"""PEP 740 attestations: what the server checks of an upload's, and the provenance it serves.

An upload's ``attestations`` field is a JSON list of attestation objects, each an in-toto
statement about one file (its name and sha256) in a DSSE envelope, signed with the key of a
Sigstore certificate. The server checks, with ``pypi-attestations`` and without the network:

- each is a well-formed attestation object (version 1, base64 certificate and envelope, at
  least one transparency log entry) holding an in-toto v1 statement with a known predicate;
- its one subject names the uploaded file (compared as parsed filenames, as PEP 740 says)
  and carries the uploaded file's sha256;
- its certificate is an X.509 certificate with a P-256 key, and the envelope's signature over
  the statement verifies with that key (PEP 740's suite: ECDSA P-256, SHA-256);
- for an upload by a GitHub or GitLab trusted publisher: the certificate names that publisher
  (its OIDC issuer, source repository and workflow, as Fulcio writes them).

What it cannot check offline: that the certificate was issued by Sigstore's certificate
authority (Fulcio) and was valid when it signed, and that the signature is in Sigstore's
transparency log (Rekor). Those need Sigstore's trust root and an identity policy, which is
what a client's ``pypi-attestations verify`` does. So a holder of a write credential can
upload attestations signed by a certificate of its own making; the served provenance says
which publisher uploaded the file, and clients verify the rest.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    parse_sdist_filename,
    parse_wheel_filename,
)

from private_pypi_core.errors import BadRequest

if TYPE_CHECKING:
    from pypi_attestations import Attestation

PAYLOAD_TYPE = "application/vnd.in-toto+json"  # DSSE's, for an in-toto statement
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
# The publisher named in the provenance of a file uploaded with one of the repository's own
# credentials (a secret, a token made by hand) rather than by a trusted publisher.
CREDENTIAL_PUBLISHER: Mapping[str, Any] = {"kind": "private-pypi-credential", "claims": {}}

# Fulcio's certificate extensions (https://github.com/sigstore/fulcio/blob/main/docs/oid-info.md)
ISSUER_OID = "1.3.6.1.4.1.57264.1.8"
SOURCE_REPOSITORY_OID = "1.3.6.1.4.1.57264.1.12"
BUILD_CONFIG_OID = "1.3.6.1.4.1.57264.1.18"


def check_attestations(
    text: str, filename: str, sha256: str, publisher: Mapping[str, Any] | None
) -> None:
    """``BadRequest`` unless ``text`` is a JSON list of one or more attestations of the file
    ``filename`` with ``sha256``, each passing the checks above (``publisher``: the trusted
    publisher uploading it, if one is)."""
    # pypi-attestations brings Sigstore, a second to import: only uploads with attestations
    # pay for it.
    from pydantic import ValidationError
    from pypi_attestations import Attestation

    try:
        attestations = json.loads(text)
    except ValueError:
        raise BadRequest("The attestations field is not valid JSON.") from None
    if not isinstance(attestations, list) or not attestations:
        raise BadRequest("The attestations field must be a JSON list of one or more attestations.")
    for number, document in enumerate(attestations, start=1):
        try:
            attestation = Attestation.model_validate(document)
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'attestation'}: {e['msg']}"
                for e in error.errors()
            )
            raise BadRequest(
                f"Attestation {number} is not a PEP 740 attestation object ({problems})."
            ) from None
        problem = _problem(attestation, filename, sha256, publisher)
        if problem:
            raise BadRequest(f"Attestation {number} does not attest {filename}: {problem}.")


def provenance(attestations: bytes, publisher: Mapping[str, Any] | None) -> dict[str, Any]:
    """The PEP 740 provenance object of a file: its stored attestations, in one bundle under
    the publisher that uploaded it."""
    return {
        "version": 1,
        "attestation_bundles": [
            {
                "publisher": {"claims": {}, **publisher} if publisher else CREDENTIAL_PUBLISHER,
                "attestations": json.loads(attestations),
            }
        ],
    }


def _problem(
    attestation: Attestation, filename: str, sha256: str, publisher: Mapping[str, Any] | None
) -> str | None:
    """What is wrong with ``attestation`` for this file, or ``None``."""
    from pypi_attestations import AttestationType

    try:
        statement = attestation.statement
    except ValueError:
        return "its statement is not JSON"
    if not isinstance(statement, dict) or statement.get("_type") != STATEMENT_TYPE:
        return f"its statement is not an in-toto statement ({STATEMENT_TYPE})"
    if statement.get("predicateType") not in {t.value for t in AttestationType}:
        return f"its predicate type {statement.get('predicateType')!r} is not one PyPI knows"
    subjects = statement.get("subject")
    if not isinstance(subjects, list) or len(subjects) != 1 or not isinstance(subjects[0], dict):
        return "its statement must have exactly one subject"
    name, digest = subjects[0].get("name"), subjects[0].get("digest")
    subject = _parsed(name) if isinstance(name, str) else None
    if subject is None or subject != _parsed(filename):
        return f"its subject is {name!r}"
    if not isinstance(digest, dict) or str(digest.get("sha256", "")).lower() != sha256:
        return "its subject's sha256 is not the sha256 of the file"
    return _signature_problem(attestation) or _publisher_problem(attestation, publisher)


def _parsed(filename: str) -> tuple[Any, ...] | None:
    """A distribution filename as ``packaging`` reads it, so that equivalent spellings
    compare equal; ``None`` when it is not one."""
    try:
        if filename.endswith(".whl"):
            return parse_wheel_filename(filename)
        if filename.endswith((".tar.gz", ".zip")):
            return parse_sdist_filename(filename)
    except (InvalidWheelFilename, InvalidSdistFilename):
        pass
    return None


def _signature_problem(attestation: Attestation) -> str | None:
    # Imported with pypi-attestations (above), not by a worker that serves provenance only.
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        certificate = x509.load_der_x509_certificate(attestation.verification_material.certificate)
    except ValueError:
        return "its certificate is not a DER X.509 certificate"
    key = certificate.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        return "its certificate's key is not an ECDSA P-256 key"
    statement = attestation.envelope.statement
    signed = b"DSSEv1 %d %s %d %s" % (
        len(PAYLOAD_TYPE),
        PAYLOAD_TYPE.encode(),
        len(statement),
        statement,
    )
    try:
        key.verify(attestation.envelope.signature, signed, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return "its signature does not verify with its certificate's key"
    return None


def _publisher_problem(attestation: Attestation, publisher: Mapping[str, Any] | None) -> str | None:
    """Whether the certificate names the trusted publisher uploading the file, for the kinds
    whose certificate claims say so (the claims are read, not verified: see above)."""
    expected = _expected_claims(publisher) if publisher else None
    if expected is None:
        return None
    try:
        claims = attestation.certificate_claims
    except ValueError:
        return "its certificate's claims cannot be read"
    for oid, (what, value, prefix) in expected.items():
        found = claims.get(oid, "")
        if not (found.startswith(value) if prefix else found == value):
            wanted = value + "..." if prefix else value
            return f"its certificate's {what} is {found!r}, not the publisher's {wanted!r}"
    return None


def _expected_claims(publisher: Mapping[str, Any]) -> dict[str, tuple[str, str, bool]] | None:
    """What the Fulcio certificate of a trusted publisher's workflow says, by OID: (what it
    is, the value, whether the value is a prefix); ``None`` for a kind not checked."""
    kind, repository = publisher.get("kind"), publisher.get("repository")
    if kind == "GitHub" and repository and publisher.get("workflow"):
        base = f"https://github.com/{repository}"
        workflow = f"{base}/.github/workflows/{publisher['workflow']}@"
        issuer = "https://token.actions.githubusercontent.com"
    elif kind == "GitLab" and repository and publisher.get("workflow_filepath"):
        base = f"https://gitlab.com/{repository}"
        workflow = f"{base}//{publisher['workflow_filepath']}@"
        issuer = "https://gitlab.com"
    else:
        return None
    return {
        ISSUER_OID: ("OIDC issuer", issuer, False),
        SOURCE_REPOSITORY_OID: ("source repository", base, False),
        BUILD_CONFIG_OID: ("workflow", workflow, True),
    }
