"""History for managers (their pods) and admins (everything), with a CSV export."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from core.errors import InvalidSubmission, NotAllowed
from core.history import Filters
from core.lifecycle import Role
from core.records import UserRecord
from web.auth import CurrentUser
from web.pages.render import page
from web.surface import surface

router = APIRouter()
CSV_COLUMNS = (
    "id", "status", "created_at", "requester", "pod", "instance", "database", "type",
    "decided_by", "approved_at", "rejected_at", "completed_at", "query_or_file", "comments",
)  # fmt: skip


def _day(value: str, name: str) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.combine(date.fromisoformat(value), time(), UTC)
    except ValueError:
        raise InvalidSubmission(name, f"{name} must be a date like 2024-01-31") from None


def _filters(params) -> Filters:
    to = _day(params.get("to", ""), "to")
    return Filters(
        statuses=tuple(s for s in params.getlist("status") if s),
        submission_type=params.get("type") or None,
        database_type=params.get("database_type") or None,
        instance_id=params.get("instance") or None,
        pod_id=params.get("pod") or None,
        requester=params.get("requester") or None,
        created_from=_day(params.get("from", ""), "from"),
        created_to=to + timedelta(days=1) if to else None,
        text=(params.get("q") or "")[:200] or None,
    ).check()


def _require_decider(user: UserRecord) -> None:
    if user.role == Role.DEVELOPER:
        raise NotAllowed("History is for managers and admins; see My requests for your own.")


@router.get("/history")
def history(request: Request, user: CurrentUser) -> Response:
    _require_decider(user)
    web = surface(request)
    filters = _filters(request.query_params)
    cursor = request.query_params.get("cursor") or None
    listing = web.history.listing(user, filters, limit=50, cursor=cursor)
    params = {k: v for k, v in request.query_params.items() if k != "cursor"}
    return page(
        request,
        "history.html",
        user,
        listing=listing,
        filters=params,
        query_string=urlencode(params),
        instances=web.core.catalogue.instances,
        pods=web.core.catalogue.pods,
    )


@router.get("/history.csv")
def history_csv(request: Request, user: CurrentUser) -> StreamingResponse:
    _require_decider(user)
    rows = surface(request).history.everything(user, _filters(request.query_params))

    def lines() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(CSV_COLUMNS)
        for r in rows:
            writer.writerow(
                [
                    r.uuid, r.status, r.created_at.isoformat(), r.requester.email, r.pod_id,
                    r.instance_id, r.database_name, r.submission_type, r.approver_email or "",
                    r.approved_at.isoformat() if r.approved_at else "",
                    r.rejected_at.isoformat() if r.rejected_at else "",
                    r.execution_completed_at.isoformat() if r.execution_completed_at else "",
                    _no_formula(r.query_content or r.script_filename or ""),
                    _no_formula(r.comments or ""),
                ]
            )  # fmt: skip
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
        yield buffer.getvalue()

    return StreamingResponse(
        lines(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="dbquery-history.csv"'},
    )


def _no_formula(text: str) -> str:
    # A cell starting with = + - @ is a formula to spreadsheets (CSV injection).
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
