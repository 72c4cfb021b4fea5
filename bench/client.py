"""A minimal keep-alive HTTP/1.1 client on 127.0.0.1 (http.client), exact headers only."""

from __future__ import annotations

import http.client
from dataclasses import dataclass
from types import TracebackType


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


class Http:
    """One persistent connection to ``127.0.0.1:port``; reconnects when the server closes."""

    def __init__(self, port: int, timeout: float = 60.0) -> None:
        self.port = port
        self.timeout = timeout
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)

    def get(self, path: str, headers: dict[str, str]) -> Response:
        """GET ``path`` sending only ``headers`` (and Host); header names lower-cased."""
        self.connection.putrequest("GET", path, skip_accept_encoding=True)
        for name, value in headers.items():
            self.connection.putheader(name, value)
        self.connection.endheaders()
        response = self.connection.getresponse()
        body = response.read()
        result = Response(
            status=response.status,
            headers={name.lower(): value for name, value in response.getheaders()},
            body=body,
        )
        if response.will_close:
            self.connection.close()
        return result

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> Http:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
