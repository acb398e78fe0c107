"""How core tells people what happened. bot/ implements this with the Slack Web API."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

from core.records import RequestRecord, UserRecord


class Notifier(Protocol):
    def request_submitted(self, request: RequestRecord, approvers: list[UserRecord]) -> None:
        """Post the requester's card and one approval DM per approver."""

    def request_decided(self, request: RequestRecord) -> None:
        """Update every approval DM (buttons gone, who decided) and the requester's card."""

    def execution_started(self, request: RequestRecord) -> None:
        """Show on the requester's card that the request is running."""

    def deliver_outcome(self, request: RequestRecord, result_file: Path | None) -> None:
        """Reply under the requester's card with the result, the error or the rejection.

        Raises when the message could not be posted; the worker retries later.
        """

    def remind(
        self, request: RequestRecord, approvers: list[UserRecord], admins: list[UserRecord]
    ) -> None:
        """Remind approvers in their DM thread; when `admins` is not empty, tell them too."""


class LoggingNotifier:
    """Used when no Slack is configured (e.g. tests of the worker): records events in the log."""

    def __init__(self) -> None:
        self.log = logging.getLogger("dbquery.notify")

    def request_submitted(self, request: RequestRecord, approvers: list[UserRecord]) -> None:
        self.log.info("request %s submitted; approvers: %d", request.uuid, len(approvers))

    def request_decided(self, request: RequestRecord) -> None:
        self.log.info("request %s %s", request.uuid, request.status)

    def execution_started(self, request: RequestRecord) -> None:
        self.log.info("request %s executing", request.uuid)

    def deliver_outcome(self, request: RequestRecord, result_file: Path | None) -> None:
        self.log.info("request %s finished: %s", request.uuid, request.status)

    def remind(
        self, request: RequestRecord, approvers: list[UserRecord], admins: list[UserRecord]
    ) -> None:
        self.log.info("request %s still pending; reminded %d", request.uuid, len(approvers))
