"""Errors a user can cause, each with the HTTP status it answers and a message for a person.

The web app turns them into responses in one handler (``web/app.py``); the CLI turns them into
a message and exit code 2 (``cli.py``).
"""

from __future__ import annotations


class UserError(Exception):
    """Something the user can fix; ``str(error)`` says what."""

    http_status = 400
    retry_after: int | None = None  # seconds, when trying again later may succeed


class ConfigError(UserError):
    """A config file, admin secret or flag that cannot be used."""


class BadRequest(UserError):
    """A request the server cannot act on."""


class Unauthorized(UserError):
    """No usable credential was sent."""

    http_status = 401


class Forbidden(UserError):
    """The credential is known but may not do this."""

    http_status = 403


class NotFound(UserError):
    """No such project, file or repository."""

    http_status = 404


class NotAcceptable(UserError):
    """No format the client accepts is offered."""

    http_status = 406


class Conflict(UserError):
    """The upload clashes with a stored file."""

    http_status = 409


class PayloadTooLarge(UserError):
    """The upload is larger than the repository accepts."""

    http_status = 413


class StorageUnavailable(UserError):
    """The store failed or is out of reach; retrying later may help.

    Its message goes to the client, so it names no address, key, URL or credential: the store's
    own error, for the log, is the exception this one is raised from.
    """

    http_status = 503
    retry_after = 30  # seconds

    def __init__(
        self, message: str = "The package storage is unavailable right now; try again later."
    ) -> None:
        super().__init__(message)


class ServerError(UserError):
    """A server that a command talks to refused or failed the request."""

    http_status = 502


class TooManyRequests(UserError):
    """The client has too many failed or pending credential checks; it may retry later."""

    http_status = 429
    retry_after = 2


class RequestTimeout(UserError):
    """The client sent its request body too slowly."""

    http_status = 408
