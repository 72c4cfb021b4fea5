"""Errors a user can cause, each with the HTTP status it answers and a message for a person.

The web app turns them into responses in one handler (``web/app.py``); the CLI turns them into
a message and exit code 2 (``cli.py``).
"""

from __future__ import annotations


class UserError(Exception):
    """Something the user can fix; ``str(error)`` says what."""

    http_status = 400


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
    """The backend failed; retrying later may help."""

    http_status = 503


class ServerError(UserError):
    """A server that a command talks to refused or failed the request."""

    http_status = 502
