"""What the request services share: the portal's sessions, one clock, the event bus, and the
one way a request changes status."""

from __future__ import annotations

import uuid as uuid_mod
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.orm import Session

from core.errors import NotFound
from core.events import KIND_OF_STATUS, EventBus, EventKind, LifecycleEvent
from core.lifecycle import FINAL_STATUSES, Status
from core.records import RequestRecord, UserRecord
from db import repository as repo
from db.models import utcnow
from db.session import Sessions


class RequestRows:
    """Shared by the lifecycle, the execution queue and the outcome deliveries, so that they
    read one clock (tests move it) and publish on one bus."""

    def __init__(
        self,
        sessions: Sessions,
        clock: Callable[[], datetime] = utcnow,
        events: EventBus | None = None,
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self.events = events or EventBus()

    def load(self, session: Session, request_uuid: uuid_mod.UUID) -> RequestRecord:
        row = repo.request_with_people(session, request_uuid)
        if row is None:
            raise NotFound(f"request {request_uuid} does not exist")
        return record(row)

    def by_id(self, session: Session, request_id: int) -> RequestRecord:
        return record(repo.request_by_id_with_people(session, request_id))

    def move(
        self,
        session: Session,
        request_id: int,
        from_status: Status,
        to_status: Status,
        *,
        result_file: str | None = None,
        **values,
    ) -> bool:
        """The conditional write of one transition; False when the row was not in `from_status`.

        A final status queues the outcome's delivery in the same transaction, so an outcome is
        never recorded without being delivered, nor delivered twice.
        """
        if not repo.transition(session, request_id, from_status, to_status, **values):
            return False
        if to_status in FINAL_STATUSES:
            repo.add_outcome_delivery(session, request_id, result_file)
        return True

    def announce(
        self,
        kind: EventKind,
        request: RequestRecord,
        approvers: tuple[UserRecord, ...] | list[UserRecord] = (),
        admins: tuple[UserRecord, ...] | list[UserRecord] = (),
        at: datetime | None = None,
    ) -> None:
        """Publish what a committed transaction did; call only once it has committed."""
        at = at or request.updated_at or request.created_at
        self.events.publish(LifecycleEvent(kind, request, at, tuple(approvers), tuple(admins)))

    def announce_move(self, request: RequestRecord) -> None:
        self.announce(KIND_OF_STATUS[request.status], request)


class UsesRequestRows:
    """A service over RequestRows: its clock is the shared one."""

    rows: RequestRows

    @property
    def sessions(self) -> Sessions:
        return self.rows.sessions

    @property
    def events(self) -> EventBus:
        return self.rows.events

    @property
    def clock(self) -> Callable[[], datetime]:
        return self.rows.clock

    @clock.setter
    def clock(self, clock: Callable[[], datetime]) -> None:
        self.rows.clock = clock


def record(row) -> RequestRecord:
    request, requester, approver = row
    return RequestRecord.of(request, requester, approver)


def as_uuid(value: uuid_mod.UUID | str) -> uuid_mod.UUID:
    if isinstance(value, uuid_mod.UUID):
        return value
    try:
        return uuid_mod.UUID(str(value).strip())
    except ValueError:
        raise NotFound(f"{value!r} is not a request id") from None


__all__ = ["RequestRows", "UsesRequestRows", "as_uuid", "record"]
