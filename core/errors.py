"""Domain errors. Each carries the sentence a person should see; bot/ decides where it is shown."""

from __future__ import annotations


class DbqueryError(Exception):
    """Base of every error whose message is meant for the user."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(DbqueryError):
    """The settings or the catalogue cannot be used."""


class NotFound(DbqueryError):
    """A request, user or catalogue entry does not exist."""


class NotRegistered(DbqueryError):
    """The person is not an active portal user."""


class NotAllowed(DbqueryError):
    """The person may not do this (e.g. decide their own request)."""


class InvalidTransition(DbqueryError):
    """The request is not in a status where this step is legal (or someone got there first)."""

    def __init__(self, message: str, current_status: str | None = None) -> None:
        super().__init__(message)
        self.current_status = current_status


class InvalidSubmission(DbqueryError):
    """A submitted field is wrong; `field` names the input (target, query, script, ...)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class CredentialsError(DbqueryError):
    """A target's secret is missing or malformed; the message names the id, never the value."""
