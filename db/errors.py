"""Errors of the portal database layer, each with the sentence an operator should see."""

from __future__ import annotations


class PortalDatabaseError(Exception):
    """The portal database cannot be used as configured (bad URL, unknown schema revision)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message
