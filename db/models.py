"""SQLAlchemy 2.0 typed models of the portal database (the seed's five tables and the bot's own)."""

from __future__ import annotations

import uuid as uuid_mod
from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    Uuid,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ROLES = ("developer", "manager", "admin")
STATUSES = ("pending", "approved", "rejected", "executing", "completed", "failed")
DATABASE_TYPES = ("postgresql", "mongodb")
SUBMISSION_TYPES = ("query", "script")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """`timestamp with time zone` that always reads back as an aware UTC datetime.

    SQLite stores no zone, so values are normalised to UTC on the way in and tagged on the way out.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a timestamp with time zone column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None or value.tzinfo is UTC:
            return value
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime, nullable=False, default=utcnow, server_default=func.current_timestamp()
    )
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime,
        nullable=False,
        default=utcnow,
        onupdate=utcnow,
        server_default=func.current_timestamp(),
    )


class User(TimestampMixin, Base):
    __tablename__ = "users"
    __table_args__ = (CheckConstraint(_in("role", ROLES), name="role"),)

    id: Mapped[uuid_mod.UUID] = mapped_column(Uuid, primary_key=True, default=uuid_mod.uuid4)
    email: Mapped[str] = mapped_column(String(255), nullable=False, unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    role: Mapped[str] = mapped_column(String(20), nullable=False, default="developer")
    pod_id: Mapped[str | None] = mapped_column(String(100), index=True)
    slack_user_id: Mapped[str | None] = mapped_column(String(50), unique=True)
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)


# Emails are unique whatever their letter case (Slack profiles and admins differ in case).
Index("uq_users_email_lower", func.lower(User.email), unique=True)


class QueryRequest(TimestampMixin, Base):
    __tablename__ = "query_requests"
    __table_args__ = (
        CheckConstraint(_in("status", STATUSES), name="status"),
        CheckConstraint(_in("database_type", DATABASE_TYPES), name="database_type"),
        CheckConstraint(_in("submission_type", SUBMISSION_TYPES), name="submission_type"),
        CheckConstraint(
            "(submission_type = 'query' AND query_content IS NOT NULL)"
            " OR (submission_type = 'script' AND script_content IS NOT NULL)",
            name="content_matches_type",
        ),
        # A listing filtered by status, or by pod and status, reads its page newest first
        # straight from one of these.
        Index("ix_query_requests_status_created_at_id", "status", "created_at", "id"),
        Index(
            "ix_query_requests_pod_id_status_created_at_id", "pod_id", "status", "created_at", "id"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uuid: Mapped[uuid_mod.UUID] = mapped_column(
        Uuid, nullable=False, unique=True, default=uuid_mod.uuid4
    )
    user_id: Mapped[uuid_mod.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"), nullable=False, index=True
    )
    database_type: Mapped[str] = mapped_column(String(20), nullable=False)
    instance_id: Mapped[str] = mapped_column(String(100), nullable=False)
    instance_name: Mapped[str] = mapped_column(String(255), nullable=False)
    database_name: Mapped[str] = mapped_column(String(255), nullable=False)
    submission_type: Mapped[str] = mapped_column(String(20), nullable=False)
    query_content: Mapped[str | None] = mapped_column(Text)
    script_filename: Mapped[str | None] = mapped_column(String(255))
    script_content: Mapped[str | None] = mapped_column(Text)
    comments: Mapped[str | None] = mapped_column(Text)
    pod_id: Mapped[str] = mapped_column(String(100), nullable=False)
    pod_name: Mapped[str] = mapped_column(String(255), nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="pending")
    approver_id: Mapped[uuid_mod.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    # The decider's email when they decided: it stays true if their account changes later.
    approver_email: Mapped[str | None] = mapped_column(String(255))
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    rejected_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    rejection_reason: Mapped[str | None] = mapped_column(Text)
    execution_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    execution_completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    execution_result: Mapped[str | None] = mapped_column(Text)
    execution_error: Mapped[str | None] = mapped_column(Text)


class RefreshToken(Base):
    __tablename__ = "refresh_tokens"

    id: Mapped[uuid_mod.UUID] = mapped_column(Uuid, primary_key=True, default=uuid_mod.uuid4)
    user_id: Mapped[uuid_mod.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    token_hash: Mapped[str] = mapped_column(String(255), nullable=False, unique=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, index=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime, nullable=False, default=utcnow, server_default=func.current_timestamp()
    )


class AccessTokenBlacklist(Base):
    __tablename__ = "access_token_blacklist"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(255), nullable=False, unique=True)
    user_id: Mapped[uuid_mod.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE")
    )
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, index=True)
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime, nullable=False, default=utcnow, server_default=func.current_timestamp()
    )


class UserTokenInvalidation(Base):
    __tablename__ = "user_token_invalidation"

    user_id: Mapped[uuid_mod.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    invalidated_at: Mapped[datetime] = mapped_column(
        UTCDateTime, nullable=False, default=utcnow, server_default=func.current_timestamp()
    )


# --- Beyond the seed: what the Slack side and the worker need to survive a restart -------


class SlackMessage(Base):
    """A message posted about a request and updated later: the requester's card, approval DMs."""

    __tablename__ = "slack_messages"
    __table_args__ = (
        CheckConstraint("purpose IN ('card', 'approval')", name="purpose"),
        UniqueConstraint("request_id", "purpose", "channel_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[int] = mapped_column(
        ForeignKey("query_requests.id", ondelete="CASCADE"), nullable=False, index=True
    )
    purpose: Mapped[str] = mapped_column(String(20), nullable=False)
    slack_user_id: Mapped[str | None] = mapped_column(String(50))
    channel_id: Mapped[str] = mapped_column(String(50), nullable=False)
    message_ts: Mapped[str] = mapped_column(String(50), nullable=False)
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime, nullable=False, default=utcnow, server_default=func.current_timestamp()
    )


class OutcomeDelivery(Base):
    """Whether a request's outcome reached the requester; a failed post is retried from here."""

    __tablename__ = "outcome_deliveries"

    request_id: Mapped[int] = mapped_column(
        ForeignKey("query_requests.id", ondelete="CASCADE"), primary_key=True
    )
    result_file: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    attempt_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime, nullable=False, default=utcnow, server_default=func.current_timestamp()
    )
    # The reply under the card once posted: a retry after a failed file upload posts the file only.
    reply_ts: Mapped[str | None] = mapped_column(String(50))


class ApprovalReminder(Base):
    """When approvers were last reminded of a pending request, and when admins were told."""

    __tablename__ = "approval_reminders"

    request_id: Mapped[int] = mapped_column(
        ForeignKey("query_requests.id", ondelete="CASCADE"), primary_key=True
    )
    reminded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    escalated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


# --- Approval policies: steps, risk and estimate, scheduling, re-runs ---------------------

RISK_LEVELS = ("low", "medium", "high", "critical")


class ApprovalStep(Base):
    """One approval given to a request: by a person, or by a policy (approver_id null).

    A request that needs two approvals stays `pending` after step 1; the unique keys make a
    second click on the same step, or the same person approving twice, fail cleanly.
    """

    __tablename__ = "approval_steps"
    __table_args__ = (
        UniqueConstraint("request_id", "step"),
        UniqueConstraint("request_id", "approver_id"),
        CheckConstraint("step IN (1, 2)", name="step"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[int] = mapped_column(
        ForeignKey("query_requests.id", ondelete="CASCADE"), nullable=False
    )
    step: Mapped[int] = mapped_column(Integer, nullable=False)
    approver_id: Mapped[uuid_mod.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    # The person's email when they approved, or `policy:<name>` for an automatic approval.
    approver_email: Mapped[str] = mapped_column(String(255), nullable=False)
    approved_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    # The policy behind this step: the auto_approve rule, or the second_approval rule.
    policy_name: Mapped[str | None] = mapped_column(String(100))


class RequestPolicy(Base):
    """What the policies made of a request at submit, and when it may run once approved."""

    __tablename__ = "request_policies"
    __table_args__ = (
        CheckConstraint(_in("risk_level", RISK_LEVELS), name="risk_level"),
        CheckConstraint("approvals_required IN (1, 2)", name="approvals_required"),
    )

    request_id: Mapped[int] = mapped_column(
        ForeignKey("query_requests.id", ondelete="CASCADE"), primary_key=True
    )
    risk_level: Mapped[str | None] = mapped_column(String(20))
    risk_reasons: Mapped[str | None] = mapped_column(Text)
    # The estimate's one-line summary; null until the estimate has run.
    estimate_summary: Mapped[str | None] = mapped_column(Text)
    estimated_rows: Mapped[int | None] = mapped_column(BigInteger)
    approvals_required: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    second_approval_policy: Mapped[str | None] = mapped_column(String(100))
    second_approval_group: Mapped[str | None] = mapped_column(String(100))
    # The requester's "Run after"; and, once approved, the earliest start the worker honours.
    run_after: Mapped[datetime | None] = mapped_column(UTCDateTime)
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    rerun_of: Mapped[int | None] = mapped_column(
        ForeignKey("query_requests.id", ondelete="SET NULL"), index=True
    )


# --- Beyond the seed: web sign-in ----------------------------------------------------------

# Listings page by (created_at, id): newest first, with a stable tie-break for the cursor.
Index("ix_query_requests_created_at_id", QueryRequest.created_at, QueryRequest.id)

# A listing's text search matches these columns with ILIKE; on PostgreSQL each has a trigram
# index, which the planner combines (a bitmap OR) for a search over all three. fastupdate off:
# every insert goes into the index at once, so no search reads a pending list of new entries.
SEARCHED_COLUMNS = ("query_content", "comments", "script_filename")
for _column in SEARCHED_COLUMNS:
    Index(
        f"ix_query_requests_{_column}_trgm",
        getattr(QueryRequest, _column),
        postgresql_using="gin",
        postgresql_ops={_column: "gin_trgm_ops"},
        postgresql_with={"fastupdate": "off"},
    ).ddl_if(dialect="postgresql")


class SignInLink(Base):
    """A one-time link sent privately (over Slack): sign in, or set a password. Stored hashed."""

    __tablename__ = "sign_in_links"
    __table_args__ = (CheckConstraint("purpose IN ('sign_in', 'set_password')", name="purpose"),)

    id: Mapped[uuid_mod.UUID] = mapped_column(Uuid, primary_key=True, default=uuid_mod.uuid4)
    user_id: Mapped[uuid_mod.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    purpose: Mapped[str] = mapped_column(String(20), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, index=True)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime, nullable=False, default=utcnow, server_default=func.current_timestamp()
    )


class LoginThrottle(Base):
    """Failed sign-ins per email and per client address, shared by every replica."""

    __tablename__ = "login_throttle"

    key: Mapped[str] = mapped_column(String(300), primary_key=True)  # "email:…" or "ip:…"
    failures: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    last_failure_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
