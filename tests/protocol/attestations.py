"""PEP 740 attestation objects for tests, signed here: an in-toto statement in a DSSE envelope,
signed with a P-256 key whose certificate (self-issued, not Sigstore's) may carry Fulcio's
claims, as a trusted publisher's certificate does."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

PUBLISH_V1 = "https://docs.pypi.org/attestations/publish/v1"
STATEMENT_V1 = "https://in-toto.io/Statement/v1"
PAYLOAD_TYPE = b"application/vnd.in-toto+json"
# Fulcio's certificate extensions for a workflow's identity.
ISSUER = "1.3.6.1.4.1.57264.1.8"
SOURCE_REPOSITORY = "1.3.6.1.4.1.57264.1.12"
BUILD_CONFIG = "1.3.6.1.4.1.57264.1.18"


def github_claims(repository: str, workflow: str, ref: str = "refs/tags/v1.0") -> dict[str, str]:
    """What Fulcio writes in the certificate of a GitHub Actions workflow run."""
    return {
        ISSUER: "https://token.actions.githubusercontent.com",
        SOURCE_REPOSITORY: f"https://github.com/{repository}",
        BUILD_CONFIG: f"https://github.com/{repository}/.github/workflows/{workflow}@{ref}",
    }


def attestation(
    dist: Path,
    *,
    subject: str | None = None,
    sha256: str | None = None,
    predicate_type: str = PUBLISH_V1,
    claims: Mapping[str, str] | None = None,
    signing_key: ec.EllipticCurvePrivateKey | None = None,
) -> dict[str, Any]:
    """An attestation of ``dist`` (or of ``subject`` with ``sha256``, when given), signed with a
    new key, or with ``signing_key`` while the certificate holds the new key's public half."""
    key = ec.generate_private_key(ec.SECP256R1())
    statement = json.dumps(
        {
            "_type": STATEMENT_V1,
            "subject": [
                {
                    "name": subject or dist.name,
                    "digest": {"sha256": sha256 or hashlib.sha256(dist.read_bytes()).hexdigest()},
                }
            ],
            "predicateType": predicate_type,
            "predicate": None,
        }
    ).encode()
    signed = b"DSSEv1 %d %s %d %s" % (len(PAYLOAD_TYPE), PAYLOAD_TYPE, len(statement), statement)
    signature = (signing_key or key).sign(signed, ec.ECDSA(hashes.SHA256()))
    return {
        "version": 1,
        "verification_material": {
            "certificate": _b64(_certificate(key, claims or {})),
            # The shape of a Rekor entry; the server does not verify it (nor can it, offline).
            "transparency_entries": [
                {
                    "logIndex": "1",
                    "logId": {"keyId": _b64(b"test log")},
                    "kindVersion": {"kind": "dsse", "version": "0.0.1"},
                    "integratedTime": str(int(time.time())),
                }
            ],
        },
        "envelope": {"statement": _b64(statement), "signature": _b64(signature)},
    }


def statement_of(document: Mapping[str, Any]) -> dict[str, Any]:
    statement: dict[str, Any] = json.loads(base64.b64decode(document["envelope"]["statement"]))
    return statement


def _certificate(key: ec.EllipticCurvePrivateKey, claims: Mapping[str, str]) -> bytes:
    now = datetime.now(UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "private-pypi test signer")])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(minutes=10))
    )
    for oid, value in claims.items():
        extension = x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), _utf8_string(value))
        builder = builder.add_extension(extension, critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def _utf8_string(value: str) -> bytes:
    """DER UTF8String, as Fulcio encodes its claims."""
    data = value.encode()
    if len(data) < 0x80:
        return bytes([0x0C, len(data)]) + data
    length = len(data).to_bytes((len(data).bit_length() + 7) // 8, "big")
    return bytes([0x0C, 0x80 | len(length)]) + length + data


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
