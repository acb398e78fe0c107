"""Request statuses, the only legal transitions, who may decide a request and who may see it.

Pure functions.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXECUTING = "executing"
    COMPLETED = "completed"
    FAILED = "failed"


class Role(StrEnum):
    DEVELOPER = "developer"
    MANAGER = "manager"
    ADMIN = "admin"


class SubmissionType(StrEnum):
    QUERY = "query"
    SCRIPT = "script"


LEGAL_TRANSITIONS: frozenset[tuple[Status, Status]] = frozenset(
    {
        (Status.PENDING, Status.APPROVED),
        (Status.PENDING, Status.REJECTED),
        (Status.APPROVED, Status.EXECUTING),
        (Status.EXECUTING, Status.COMPLETED),
        (Status.EXECUTING, Status.FAILED),
    }
)

FINAL_STATUSES = frozenset({Status.REJECTED, Status.COMPLETED, Status.FAILED})


def is_legal(current: Status, target: Status) -> bool:
    return (Status(current), Status(target)) in LEGAL_TRANSITIONS


def why_cannot_decide(
    *,
    decider_id: object,
    decider_role: str,
    decider_pod: str | None,
    decider_active: bool,
    requester_id: object,
    request_pod: str,
) -> str | None:
    """None when the person may approve or reject; otherwise the reason they may not."""
    if not decider_active:
        return "your portal account is deactivated"
    if decider_id == requester_id:
        return "nobody may decide their own request"
    if decider_role == Role.ADMIN:
        return None
    if decider_role == Role.MANAGER:
        if decider_pod == request_pod:
            return None
        return f"only a manager of pod {request_pod!r} or an admin may decide it"
    return "developers cannot approve or reject requests"


def why_cannot_view(
    *,
    viewer_id: object,
    viewer_role: str,
    viewer_pod: str | None,
    viewer_active: bool,
    requester_id: object,
    request_pod: str,
) -> str | None:
    """None when the person may see a request; otherwise the reason they may not.

    A request holds a query against production data and its results, so only the people it
    concerns see it: its requester, and those who may decide it (the managers of its pod, admins).
    """
    if not viewer_active:
        return "your portal account is deactivated"
    if viewer_id == requester_id or viewer_role == Role.ADMIN:
        return None
    if viewer_role == Role.MANAGER and viewer_pod == request_pod:
        return None
    return (
        f"it holds someone else's query and results; only its requester, a manager of pod"
        f" {request_pod!r} or an admin may see it"
    )
