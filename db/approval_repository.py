"""The queries approval policies need: approval steps, per-request policy state, schedules.

Callers own the transaction, as in db.repository.
"""

from __future__ import annotations

import uuid as uuid_mod
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db.models import ApprovalStep, QueryRequest, RequestPolicy


def add_request_policy(session: Session, request_id: int, **values: Any) -> RequestPolicy:
    state = RequestPolicy(request_id=request_id, **values)
    session.add(state)
    session.flush()
    return state


def request_policy(session: Session, request_id: int) -> RequestPolicy | None:
    return session.get(RequestPolicy, request_id)


def update_request_policy(session: Session, request_id: int, **values: Any) -> bool:
    result = session.execute(
        update(RequestPolicy)
        .where(RequestPolicy.request_id == request_id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def add_approval_step(
    session: Session,
    *,
    request_id: int,
    step: int,
    approver_id: uuid_mod.UUID | None,
    approver_email: str,
    approved_at: datetime,
    policy_name: str | None = None,
) -> bool:
    """Record one approval; False when that step is taken or this person already approved.

    The insert runs in a savepoint, so losing the race leaves the caller's transaction usable.
    """
    try:
        with session.begin_nested():
            session.add(
                ApprovalStep(
                    request_id=request_id,
                    step=step,
                    approver_id=approver_id,
                    approver_email=approver_email,
                    approved_at=approved_at,
                    policy_name=policy_name,
                )
            )
            session.flush()
    except IntegrityError:
        return False
    return True


def approval_steps(session: Session, request_id: int) -> Sequence[ApprovalStep]:
    return session.scalars(
        select(ApprovalStep)
        .where(ApprovalStep.request_id == request_id)
        .order_by(ApprovalStep.step)
    ).all()


def pending_expired_ids(session: Session, now: datetime, limit: int = 100) -> Sequence[int]:
    """Pending requests whose decision time is over, oldest first."""
    return session.scalars(
        select(QueryRequest.id)
        .join(RequestPolicy, RequestPolicy.request_id == QueryRequest.id)
        .where(QueryRequest.status == "pending", RequestPolicy.expires_at <= now)
        .order_by(RequestPolicy.expires_at, QueryRequest.id)
        .limit(limit)
    ).all()


def unassessed_pending_ids(session: Session, submitted_before: datetime) -> Sequence[int]:
    """Pending requests whose estimate never arrived (its process died meanwhile)."""
    return session.scalars(
        select(QueryRequest.id)
        .join(RequestPolicy, RequestPolicy.request_id == QueryRequest.id)
        .where(
            QueryRequest.status == "pending",
            RequestPolicy.risk_level.is_(None),
            QueryRequest.created_at < submitted_before,
        )
        .order_by(QueryRequest.id)
        .limit(20)
    ).all()


def next_runnable_approved_id(session: Session, now: datetime) -> int | None:
    """The oldest approved request whose earliest start has come, nobody else claiming it."""
    query = (
        select(QueryRequest.id)
        .outerjoin(RequestPolicy, RequestPolicy.request_id == QueryRequest.id)
        .where(
            QueryRequest.status == "approved",
            or_(RequestPolicy.not_before.is_(None), RequestPolicy.not_before <= now),
        )
        .order_by(QueryRequest.approved_at, QueryRequest.id)
        .limit(1)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(of=QueryRequest, skip_locked=True)
    return session.scalar(query)


def next_scheduled_start(session: Session) -> datetime | None:
    """The earliest start among approved requests that wait (for the worker's next wake-up)."""
    return session.scalar(
        select(RequestPolicy.not_before)
        .join(QueryRequest, RequestPolicy.request_id == QueryRequest.id)
        .where(QueryRequest.status == "approved", RequestPolicy.not_before.is_not(None))
        .order_by(RequestPolicy.not_before)
        .limit(1)
    )
