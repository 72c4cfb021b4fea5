"""A local OIDC issuer shaped like GitHub Actions', over HTTPS on loopback, for the trusted
publishing tests: its discovery document, its JWKS (RSA keys that it can rotate), and the
token endpoint a job reaches through ``ACTIONS_ID_TOKEN_REQUEST_URL`` and
``ACTIONS_ID_TOKEN_REQUEST_TOKEN``, which answers ``{"value": "<ID token>"}`` for the audience
asked. It records every request it serves, so a test can tell it was never asked."""

from __future__ import annotations

import json
import secrets
import ssl
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import trustme
from cryptography.hazmat.primitives.asymmetric import rsa

TOKEN_PATH = "/_apis/pipelines/idtoken"
ID_TOKEN_SECONDS = 300


@dataclass
class SigningKey:
    kid: str
    private_key: rsa.RSAPrivateKey = field(repr=False)

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(secrets.token_hex(8), rsa.generate_private_key(65537, 2048))

    def public_jwk(self) -> dict[str, Any]:
        jwk = jwt.algorithms.RSAAlgorithm.to_jwk(self.private_key.public_key(), as_dict=True)
        return {**jwk, "kid": self.kid, "alg": "RS256", "use": "sig"}

    def sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(claims, self.private_key, algorithm="RS256", headers={"kid": self.kid})


@dataclass
class Job:
    """The workflow run whose ID tokens the issuer hands out."""

    repository: str = "acme/widgets"
    workflow: str = "release.yml"
    ref: str = "refs/heads/main"
    environment: str | None = None

    def claims(self) -> dict[str, Any]:
        owner = self.repository.split("/")[0]
        workflow_ref = f"{self.repository}/.github/workflows/{self.workflow}@{self.ref}"
        subject = (
            f"repo:{self.repository}:environment:{self.environment}"
            if self.environment
            else f"repo:{self.repository}:ref:{self.ref}"
        )
        claims: dict[str, Any] = {
            "sub": subject,
            "ref": self.ref,
            "sha": secrets.token_hex(20),
            "repository": self.repository,
            "repository_owner": owner,
            "repository_owner_id": "1001",
            "repository_id": "2002",
            "run_id": str(secrets.randbelow(10**9)),
            "run_attempt": "1",
            "actor": "octocat",
            "workflow": "release",
            "workflow_ref": workflow_ref,
            "job_workflow_ref": workflow_ref,
            "event_name": "push",
            "ref_type": "branch",
            "runner_environment": "github-hosted",
        }
        if self.environment:
            claims["environment"] = self.environment
        return claims


class OidcIssuer:
    """The issuer at ``url`` (https://127.0.0.1:PORT), serving with a certificate of ``ca``."""

    def __init__(self, ca: trustme.CA) -> None:
        self.keys = [SigningKey.generate()]
        self.signing_key = self.keys[0]
        self.job = Job()
        self.request_token = secrets.token_urlsafe(24)
        self.requests: list[str] = []  # the paths asked, in order
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1").configure_cert(context)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def request_url(self) -> str:
        """``ACTIONS_ID_TOKEN_REQUEST_URL``: clients append ``&audience=...``."""
        return f"{self.url}{TOKEN_PATH}?api-version=2.0"

    def actions_env(self) -> dict[str, str]:
        """What a GitHub Actions job with ``id-token: write`` has in its environment."""
        return {
            "GITHUB_ACTIONS": "true",
            "ACTIONS_ID_TOKEN_REQUEST_URL": self.request_url,
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN": self.request_token,
        }

    def id_token(self, audience: str, *, key: SigningKey | None = None, **overrides: Any) -> str:
        """An ID token of the current job for ``audience``; ``overrides`` replace claims (a
        value of ``None`` removes the claim)."""
        now = int(time.time())
        claims = {
            "jti": str(uuid.uuid4()),
            "iss": self.url,
            "aud": audience,
            **self.job.claims(),
            "nbf": now - 5,
            "iat": now,
            "exp": now + ID_TOKEN_SECONDS,
        }
        claims.update(overrides)
        claims = {name: value for name, value in claims.items() if value is not None}
        return (key or self.signing_key).sign(claims)

    def rotate(self) -> SigningKey:
        """Publish a new key and sign with it from now on (the old one stays published)."""
        self.signing_key = SigningKey.generate()
        self.keys.append(self.signing_key)
        return self.signing_key

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler(issuer: OidcIssuer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            issuer.requests.append(url.path)
            if url.path == "/.well-known/openid-configuration":
                self._answer(
                    200,
                    {
                        "issuer": issuer.url,
                        "jwks_uri": f"{issuer.url}/.well-known/jwks",
                        "subject_types_supported": ["public", "pairwise"],
                        "response_types_supported": ["id_token"],
                        "id_token_signing_alg_values_supported": ["RS256"],
                        "claims_supported": ["sub", "aud", "exp", "iat", "iss", "jti", "nbf"],
                        "scopes_supported": ["openid"],
                    },
                )
            elif url.path == "/.well-known/jwks":
                self._answer(200, {"keys": [key.public_jwk() for key in issuer.keys]})
            elif url.path == TOKEN_PATH:
                self._id_token(parse_qs(url.query))
            else:
                self._answer(404, {"message": "not found"})

        def _id_token(self, query: dict[str, list[str]]) -> None:
            expected = f"bearer {issuer.request_token}"
            if (self.headers.get("Authorization") or "").lower() != expected.lower():
                self._answer(401, {"message": "Bad credentials"})
            elif "audience" not in query:
                self._answer(400, {"message": "audience required"})
            else:
                self._answer(200, {"count": 1, "value": issuer.id_token(query["audience"][0])})

        def _answer(self, status: int, document: dict[str, Any]) -> None:
            body = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
