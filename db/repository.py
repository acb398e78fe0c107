"""The queries the request service needs, named for what they do. Callers own the transaction."""

from __future__ import annotations

import uuid as uuid_mod
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, String, and_, cast, delete, exists, func, or_, select, update
from sqlalchemy.orm import Session, aliased

from db.models import (
    AccessTokenBlacklist,
    ApprovalReminder,
    ApprovalStep,
    OutcomeDelivery,
    QueryRequest,
    RefreshToken,
    RequestPolicy,
    SlackMessage,
    User,
)

Requester = aliased(User, name="requester")
Approver = aliased(User, name="approver")


# --- users ---------------------------------------------------------------------------------


def user_by_id(session: Session, user_id: uuid_mod.UUID) -> User | None:
    return session.get(User, user_id)


def user_by_email(session: Session, email: str) -> User | None:
    return session.scalar(select(User).where(func.lower(User.email) == email.lower()))


def user_by_slack_id(session: Session, slack_user_id: str) -> User | None:
    return session.scalar(select(User).where(User.slack_user_id == slack_user_id))


def all_users(session: Session) -> Sequence[User]:
    # Users without a pod (admins) first on every backend (PostgreSQL sorts NULL last by default).
    return session.scalars(select(User).order_by(User.pod_id.nulls_first(), User.email)).all()


def active_managers_of_pod(session: Session, pod_id: str) -> Sequence[User]:
    return session.scalars(
        select(User)
        .where(User.role == "manager", User.pod_id == pod_id, User.is_active.is_(True))
        .order_by(User.email)
    ).all()


def active_admins(session: Session) -> Sequence[User]:
    return session.scalars(
        select(User).where(User.role == "admin", User.is_active.is_(True)).order_by(User.email)
    ).all()


# --- requests --------------------------------------------------------------------------------


def _with_people() -> Select[Any]:
    return (
        select(QueryRequest, Requester, Approver)
        .join(Requester, QueryRequest.user_id == Requester.id)
        .outerjoin(Approver, QueryRequest.approver_id == Approver.id)
    )


def request_with_people(session: Session, request_uuid: uuid_mod.UUID) -> Any | None:
    return session.execute(_with_people().where(QueryRequest.uuid == request_uuid)).first()


def request_by_id_with_people(session: Session, request_id: int) -> Any | None:
    return session.execute(_with_people().where(QueryRequest.id == request_id)).first()


def requests_by_uuid_prefix(session: Session, prefix: str, limit: int = 2) -> Sequence[Any]:
    return session.execute(
        _with_people()
        # Compared without dashes: SQLite stores a uuid as 32 hex digits, PostgreSQL prints dashes.
        .where(
            func.replace(cast(QueryRequest.uuid, String), "-", "").like(
                prefix.replace("-", "") + "%"
            )
        )
        .order_by(QueryRequest.id.desc())
        .limit(limit)
    ).all()


def recent_requests(
    session: Session,
    *,
    user_id: uuid_mod.UUID | None = None,
    status: str | None = None,
    pod_id: str | None = None,
    limit: int = 20,
) -> Sequence[Any]:
    query = _with_people()
    if user_id is not None:
        query = query.where(QueryRequest.user_id == user_id)
    if status is not None:
        query = query.where(QueryRequest.status == status)
    if pod_id is not None:
        query = query.where(QueryRequest.pod_id == pod_id)
    return session.execute(query.order_by(QueryRequest.id.desc()).limit(limit)).all()


def pending_older_than(session: Session, cutoff: datetime) -> Sequence[Any]:
    return session.execute(
        _with_people()
        .where(QueryRequest.status == "pending", QueryRequest.created_at <= cutoff)
        .order_by(QueryRequest.id)
    ).all()


def transition(
    session: Session, request_id: int, from_status: str, to_status: str, **values: Any
) -> bool:
    """The one atomic conditional write behind every status change; False when it lost a race."""
    result = session.execute(
        update(QueryRequest)
        .where(QueryRequest.id == request_id, QueryRequest.status == from_status)
        .values(status=to_status, **values)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def next_approved_id(session: Session) -> int | None:
    """The oldest approved request nobody else is claiming (rows locked by others are skipped)."""
    query = (
        select(QueryRequest.id)
        .where(QueryRequest.status == "approved")
        .order_by(QueryRequest.approved_at, QueryRequest.id)
        .limit(1)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return session.scalar(query)


def executing_ids(session: Session) -> Sequence[int]:
    return session.scalars(select(QueryRequest.id).where(QueryRequest.status == "executing")).all()


def count_by_status(session: Session) -> dict[str, int]:
    rows = session.execute(
        select(QueryRequest.status, func.count()).group_by(QueryRequest.status)
    ).all()
    return {status: count for status, count in rows}


# --- delivery, reminders and Slack message references -------------------------------------


def add_outcome_delivery(session: Session, request_id: int, result_file: str | None) -> None:
    session.add(OutcomeDelivery(request_id=request_id, result_file=result_file))


def outcome_delivery(session: Session, request_id: int) -> OutcomeDelivery | None:
    return session.get(OutcomeDelivery, request_id)


def save_outcome_reply(session: Session, request_id: int, reply_ts: str) -> None:
    session.execute(
        update(OutcomeDelivery)
        .where(OutcomeDelivery.request_id == request_id)
        .values(reply_ts=reply_ts)
        .execution_options(synchronize_session=False)
    )


def outcome_reply_ts(session: Session, request_id: int) -> str | None:
    return session.scalar(
        select(OutcomeDelivery.reply_ts).where(OutcomeDelivery.request_id == request_id)
    )


def undelivered_outcomes(
    session: Session, *, max_attempts: int, started_before: datetime, limit: int = 50
) -> Sequence[int]:
    return session.scalars(
        select(OutcomeDelivery.request_id)
        .where(
            OutcomeDelivery.delivered_at.is_(None),
            OutcomeDelivery.attempts < max_attempts,
            (OutcomeDelivery.attempt_started_at.is_(None))
            | (OutcomeDelivery.attempt_started_at < started_before),
        )
        .order_by(OutcomeDelivery.request_id)
        .limit(limit)
    ).all()


def claim_delivery_attempt(
    session: Session, request_id: int, *, now: datetime, started_before: datetime
) -> bool:
    """Take the right to post this outcome now; False when delivered or another attempt is live."""
    result = session.execute(
        update(OutcomeDelivery)
        .where(
            OutcomeDelivery.request_id == request_id,
            OutcomeDelivery.delivered_at.is_(None),
            (OutcomeDelivery.attempt_started_at.is_(None))
            | (OutcomeDelivery.attempt_started_at < started_before),
        )
        .values(attempts=OutcomeDelivery.attempts + 1, attempt_started_at=now)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def reminder_state_for_update(session: Session, request_id: int) -> ApprovalReminder:
    state = session.get(ApprovalReminder, request_id, with_for_update=True)
    if state is None:
        state = ApprovalReminder(request_id=request_id)
        session.add(state)
    return state


def save_slack_message(
    session: Session,
    *,
    request_id: int,
    purpose: str,
    channel_id: str,
    message_ts: str,
    slack_user_id: str | None,
) -> None:
    existing = session.scalar(
        select(SlackMessage).where(
            SlackMessage.request_id == request_id,
            SlackMessage.purpose == purpose,
            SlackMessage.channel_id == channel_id,
        )
    )
    if existing is None:
        session.add(
            SlackMessage(
                request_id=request_id,
                purpose=purpose,
                channel_id=channel_id,
                message_ts=message_ts,
                slack_user_id=slack_user_id,
            )
        )
    else:
        existing.message_ts = message_ts


def slack_messages(session: Session, request_id: int, purpose: str) -> Sequence[SlackMessage]:
    return session.scalars(
        select(SlackMessage)
        .where(SlackMessage.request_id == request_id, SlackMessage.purpose == purpose)
        .order_by(SlackMessage.id)
    ).all()


# --- token tables (seed) --------------------------------------------------------------------


def delete_expired_tokens(session: Session, now: datetime) -> int:
    removed = session.execute(delete(RefreshToken).where(RefreshToken.expires_at < now)).rowcount
    removed += session.execute(
        delete(AccessTokenBlacklist).where(AccessTokenBlacklist.expires_at < now)
    ).rowcount
    return removed


def pending_for_decider(
    session: Session, *, pod_id: str | None, is_admin: bool, exclude_user: uuid_mod.UUID, limit: int
) -> Sequence[Any]:
    """Pending requests this person may decide now, oldest first.

    Step 1 falls to the managers of the request's pod; once step 1 of a two-step approval is
    given, step 2 falls to the second approval's group (a pod's managers; nobody but the admins
    when the group is the admins). Admins may decide either. Never the requester, nor whoever
    gave step 1.
    """
    step_given = exists().where(ApprovalStep.request_id == QueryRequest.id)
    given_by_me = exists().where(
        ApprovalStep.request_id == QueryRequest.id, ApprovalStep.approver_id == exclude_user
    )
    query = _with_people().where(
        QueryRequest.status == "pending", QueryRequest.user_id != exclude_user, ~given_by_me
    )
    if not is_admin:
        pod = pod_id or ""
        second_group = (
            select(RequestPolicy.second_approval_group)
            .where(RequestPolicy.request_id == QueryRequest.id)
            .scalar_subquery()
        )
        query = query.where(
            or_(
                and_(~step_given, QueryRequest.pod_id == pod),
                and_(step_given, second_group == pod),
            )
        )
    return session.execute(query.order_by(QueryRequest.id).limit(limit)).all()
