"""Finding requests: listings with filters, text search and cursor paging, and their statistics.

What a person sees is limited by the same rule as a single request (core.lifecycle's
why_cannot_view): their own requests, their pod's when they are a manager, all for an admin.
"""

from __future__ import annotations

import base64
import binascii
import json
import operator
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import and_, bindparam, false, null, or_, select
from sqlalchemy.orm import aliased

from core.errors import InvalidSubmission
from core.lifecycle import Role, Status, SubmissionType
from core.records import RequestRecord, UserRecord
from db.models import SEARCHED_COLUMNS, OutcomeDelivery, QueryRequest, User, utcnow
from db.session import Sessions

PAGE_MAX = 100
TEXT_MAX_CHARS = 200
DATABASE_TYPES = ("postgresql", "mongodb")


@dataclass(frozen=True)
class Filters:
    statuses: tuple[str, ...] = ()
    submission_type: str | None = None
    database_type: str | None = None
    instance_id: str | None = None
    pod_id: str | None = None
    requester: str | None = None  # an email
    created_from: datetime | None = None
    created_to: datetime | None = None  # exclusive
    text: str | None = None  # searched in the query, the comments and the script's filename
    mine: bool = False  # only the viewer's own requests

    def check(self) -> Filters:
        for status in self.statuses:
            if status not in set(Status):
                raise InvalidSubmission("status", f"unknown status {status!r}")
        if self.submission_type and self.submission_type not in set(SubmissionType):
            raise InvalidSubmission("type", "type must be query or script")
        if self.database_type and self.database_type not in DATABASE_TYPES:
            raise InvalidSubmission("database_type", "database type must be postgresql or mongodb")
        if self.text and len(self.text) > TEXT_MAX_CHARS:
            raise InvalidSubmission("q", f"the search is limited to {TEXT_MAX_CHARS} characters")
        if self.created_from and self.created_to and self.created_from >= self.created_to:
            raise InvalidSubmission("created_to", "the end of the date range is before its start")
        return self


@dataclass(frozen=True)
class Page:
    items: list[RequestRecord]
    next_cursor: str | None


@dataclass(frozen=True)
class Percentiles:
    count: int
    p50_s: float | None
    p90_s: float | None


@dataclass
class Stats:
    days: list[date]
    per_day: dict[str, list[int]]  # status -> count per day, aligned with `days`
    decision: Percentiles
    execution: Percentiles
    busiest_instances: list[tuple[str, int]]
    busiest_requesters: list[tuple[str, int]]
    totals: dict[str, int] = field(default_factory=dict)


class HistoryService:
    def __init__(self, sessions: Sessions, clock: Callable[[], datetime] = utcnow) -> None:
        self.sessions = sessions
        self.clock = clock

    def listing(
        self,
        viewer: UserRecord,
        filters: Filters = Filters(),
        *,
        oldest_first: bool = False,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        """One page of what `viewer` may see, newest first (or oldest), after `cursor`.

        Listed records leave out the script's text, the result summary and the approver's
        record (None); `approver_email` names who decided.
        """
        if not 1 <= limit <= PAGE_MAX:
            raise InvalidSubmission("limit", f"limit must be between 1 and {PAGE_MAX}")
        filters.check()
        after = _decode_cursor(cursor) if cursor else None
        scope, params = _scope(viewer, filters)
        if after is not None:
            params["after_at"], params["after_id"] = after
        params["limit"] = limit + 1
        statement = _listing_statement(scope, after is not None, oldest_first)
        with self.sessions.reading() as connection:
            rows = connection.execute(statement, params).all()
        items = [_record(row) for row in rows[:limit]]
        next_cursor = _encode_cursor(items[-1]) if len(rows) > limit else None
        return Page(items, next_cursor)

    def everything(
        self, viewer: UserRecord, filters: Filters = Filters(), max_rows: int = 100_000
    ) -> Iterator[RequestRecord]:
        """Every matching request, newest first, a page at a time (for an export)."""
        cursor, sent = None, 0
        while sent < max_rows:
            page = self.listing(viewer, filters, limit=PAGE_MAX, cursor=cursor)
            yield from page.items[: max_rows - sent]
            sent += len(page.items)
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def result_file(self, request: RequestRecord) -> Path | None:
        """The full result of a completed request, while it is kept on disk."""
        with self.sessions() as session:
            path = session.scalar(
                select(OutcomeDelivery.result_file).where(OutcomeDelivery.request_id == request.id)
            )
        if not path or not Path(path).is_file():
            return None
        return Path(path)

    def stats(self, viewer: UserRecord, days: int = 30) -> Stats:
        """Requests per day by status, times to decision and execution, the busiest targets
        and people, over the last `days` days of what the viewer may see."""
        today = self.clock().astimezone(UTC).date()
        first = today - timedelta(days=days - 1)
        since = datetime(first.year, first.month, first.day, tzinfo=UTC)
        columns = select(
            QueryRequest.created_at,
            QueryRequest.status,
            QueryRequest.approved_at,
            QueryRequest.rejected_at,
            QueryRequest.execution_started_at,
            QueryRequest.execution_completed_at,
            QueryRequest.instance_name,
            Requester.email,
        ).join(Requester, Requester.id == QueryRequest.user_id)
        scope, params = _scope(viewer, Filters(created_from=since))
        query = _visible(columns, scope)
        day_list = [first + timedelta(days=i) for i in range(days)]
        index = {d: i for i, d in enumerate(day_list)}
        per_day: dict[str, list[int]] = {status: [0] * days for status in Status}
        decisions, executions = [], []
        instances: Counter[str] = Counter()
        requesters: Counter[str] = Counter()
        with self.sessions() as session:
            for row in session.execute(query, params):
                day = row.created_at.astimezone(UTC).date()
                if day in index:
                    per_day[row.status][index[day]] += 1
                decided = row.approved_at or row.rejected_at
                if decided:
                    decisions.append((decided - row.created_at).total_seconds())
                if row.execution_started_at and row.execution_completed_at:
                    executions.append(
                        (row.execution_completed_at - row.execution_started_at).total_seconds()
                    )
                instances[row.instance_name] += 1
                requesters[row.email] += 1
        totals: defaultdict[str, int] = defaultdict(int)
        for status, counts in per_day.items():
            totals[status] = sum(counts)
        return Stats(
            days=day_list,
            per_day=per_day,
            decision=_percentiles(decisions),
            execution=_percentiles(executions),
            busiest_instances=instances.most_common(5),
            busiest_requesters=requesters.most_common(5),
            totals=dict(totals),
        )


Requester = aliased(User, name="requester")

# A listing never shows a script's text (up to 1 MB each) nor the result summary: they are not
# read, and listed records carry None for them (`get` a request for everything). The decider is
# named by approver_email (kept as it was when they decided), so listings need no second join on
# users: listed records have no `approver` either.
LEFT_OUT_OF_LISTINGS = frozenset({"script_content", "execution_result", "approver"})
# The record's fields in order, without the requester (read from the joined users row).
_REQUEST_FIELDS = tuple(f.name for f in fields(RequestRecord) if f.name != "requester")
_REQUESTER_AT = [f.name for f in fields(RequestRecord)].index("requester")
_REQUESTER_FIELDS = tuple(f.name for f in fields(UserRecord))


def _with_people():
    # Plain columns in the record's own order rather than ORM entities: a listing reads rows
    # and changes none, and each record is then built straight from its row.
    return select(
        *(
            null().label(name) if name in LEFT_OUT_OF_LISTINGS else getattr(QueryRequest, name)
            for name in _REQUEST_FIELDS
        ),
        *(getattr(Requester, name) for name in _REQUESTER_FIELDS),
    ).join(Requester, QueryRequest.user_id == Requester.id)


def _record(row) -> RequestRecord:
    split, at = len(_REQUEST_FIELDS), _REQUESTER_AT
    return RequestRecord(*row[:at], UserRecord(*row[split:]), *row[at:split])


def _percentiles(values: list[float]) -> Percentiles:
    if not values:
        return Percentiles(0, None, None)
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return Percentiles(len(ordered), at(0.5), at(0.9))


@dataclass(frozen=True)
class _Scope:
    """The shape of a listing's WHERE clause: who is looking, and which filters are set.

    Statements are built once per shape, with bound parameters for every value, so a listing
    costs a dictionary of values rather than a new statement to build and compile.
    """

    seen_by: str  # nobody (inactive) | own | pod (a manager: own and their pod's) | all
    statuses: bool = False
    submission_type: bool = False
    database_type: bool = False
    instance_id: bool = False
    pod_id: bool = False
    requester: bool = False
    created_from: bool = False
    created_to: bool = False
    text: bool = False


def _scope(viewer: UserRecord, filters: Filters) -> tuple[_Scope, dict[str, Any]]:
    """What `viewer` may see under `filters`: the statement's shape and its parameter values."""
    if not viewer.is_active:
        return _Scope("nobody"), {}
    if filters.mine or viewer.role not in (Role.MANAGER, Role.ADMIN):
        seen_by = "own"
    else:
        seen_by = "pod" if viewer.role == Role.MANAGER else "all"
    text = (filters.text or "").strip()
    values: dict[str, Any] = {
        "statuses": list(filters.statuses),
        "submission_type": filters.submission_type,
        "database_type": filters.database_type,
        "instance_id": filters.instance_id,
        "pod_id": filters.pod_id,
        "requester": _escape_like(filters.requester.strip()) if filters.requester else None,
        "created_from": filters.created_from,
        "created_to": filters.created_to,
        "text": f"%{_escape_like(text)}%" if text else None,
    }
    params = {name: value for name, value in values.items() if value}
    params["viewer_id"] = viewer.id
    params["viewer_pod"] = viewer.pod_id or ""
    return _Scope(seen_by, **{name: True for name in params if name in values}), params


def _visible(query, scope: _Scope):
    """`query` (over query_requests joined to its Requester) restricted to `scope`."""
    if scope.seen_by == "nobody":
        return query.where(false())
    mine = QueryRequest.user_id == bindparam("viewer_id")
    if scope.seen_by == "own":
        query = query.where(mine)
    elif scope.seen_by == "pod":
        query = query.where(or_(mine, QueryRequest.pod_id == bindparam("viewer_pod")))
    if scope.statuses:
        query = query.where(QueryRequest.status.in_(bindparam("statuses", expanding=True)))
    for name in ("submission_type", "database_type", "instance_id", "pod_id"):
        if getattr(scope, name):
            query = query.where(getattr(QueryRequest, name) == bindparam(name))
    if scope.requester:
        query = query.where(Requester.email.ilike(bindparam("requester"), escape="\\"))
    if scope.created_from:
        query = query.where(QueryRequest.created_at >= bindparam("created_from"))
    if scope.created_to:
        query = query.where(QueryRequest.created_at < bindparam("created_to"))
    if scope.text:
        pattern = bindparam("text")
        query = query.where(
            or_(
                *(
                    getattr(QueryRequest, column).ilike(pattern, escape="\\")
                    for column in SEARCHED_COLUMNS
                )
            )
        )
    return query


@lru_cache(maxsize=512)
def _listing_statement(scope: _Scope, paged: bool, oldest_first: bool):
    """The page query: newest first (or oldest), after the cursor's (created_at, id) if paged."""
    query = _visible(_with_people(), scope)
    after = operator.gt if oldest_first else operator.lt
    if paged:
        at, request_id = bindparam("after_at"), bindparam("after_id")
        query = query.where(
            or_(
                after(QueryRequest.created_at, at),
                and_(QueryRequest.created_at == at, after(QueryRequest.id, request_id)),
            )
        )
    columns = (QueryRequest.created_at, QueryRequest.id)
    order = [c.asc() if oldest_first else c.desc() for c in columns]
    return query.order_by(*order).limit(bindparam("limit"))


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _encode_cursor(request: RequestRecord) -> str:
    raw = json.dumps([request.created_at.isoformat(), request.id]).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, request_id = json.loads(raw)
        moment = datetime.fromisoformat(at)
        if moment.tzinfo is None or not isinstance(request_id, int):
            raise ValueError
        return moment, request_id
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise InvalidSubmission(
            "cursor", "the page cursor is not valid; start from the first page"
        ) from None
