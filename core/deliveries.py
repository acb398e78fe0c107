"""Outcome deliveries: the queue of outcomes (completed, failed, rejected) still to be told.

A row is added in the transaction that gives a request its final status (core.request_rows);
the worker claims an attempt, hands it to the surface, and records how it went.
"""

from __future__ import annotations

from datetime import timedelta

from core.errors import InvalidTransition
from core.records import RequestRecord
from core.request_rows import RequestRows, UsesRequestRows
from db import repository as repo


class OutcomeDeliveries(UsesRequestRows):
    def __init__(self, rows: RequestRows) -> None:
        self.rows = rows

    def claim(self, request_id: int, lease: timedelta) -> tuple[RequestRecord, str | None]:
        """The request and its result file when this caller may deliver its outcome now.

        Raises InvalidTransition when it was delivered already or another attempt is under way.
        """
        now = self.clock()
        with self.sessions.begin() as session:
            if not repo.claim_delivery_attempt(
                session, request_id, now=now, started_before=now - lease
            ):
                raise InvalidTransition("the outcome is delivered or being delivered")
            delivery = repo.outcome_delivery(session, request_id)
            return self.rows.by_id(session, request_id), delivery.result_file

    def done(self, request_id: int, error: str | None = None) -> None:
        with self.sessions.begin() as session:
            delivery = repo.outcome_delivery(session, request_id)
            if error is None:
                delivery.delivered_at = self.clock()
                delivery.last_error = None
            else:
                # attempt_started_at stays: the lease doubles as the wait before the next retry.
                delivery.last_error = error[:1000]

    def undelivered(self, lease: timedelta, max_attempts: int) -> list[int]:
        with self.sessions() as session:
            return list(
                repo.undelivered_outcomes(
                    session, max_attempts=max_attempts, started_before=self.clock() - lease
                )
            )


__all__ = ["OutcomeDeliveries"]
