"""Request statuses, the only legal transitions, who may decide a request and who may see it.

Pure functions.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol


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


class Person(Protocol):
    """Who is asking: a portal user (a record or a row)."""

    id: object
    role: str
    pod_id: str | None
    is_active: bool


def why_cannot_decide(person: Person, *, requester_id: object, request_pod: str) -> str | None:
    """None when the person may approve or reject; otherwise the reason they may not."""
    if not person.is_active:
        return "your portal account is deactivated"
    if person.id == requester_id:
        return "nobody may decide their own request"
    if person.role == Role.ADMIN:
        return None
    if person.role == Role.MANAGER:
        if person.pod_id == request_pod:
            return None
        return f"only a manager of pod {request_pod!r} or an admin may decide it"
    return "developers cannot approve or reject requests"


def why_cannot_view(person: Person, *, requester_id: object, request_pod: str) -> str | None:
    """None when the person may see a request; otherwise the reason they may not.

    A request holds a query against production data and its results, so only the people it
    concerns see it: its requester, and those who may decide it (the managers of its pod, admins).
    """
    if not person.is_active:
        return "your portal account is deactivated"
    if person.id == requester_id or person.role == Role.ADMIN:
        return None
    if person.role == Role.MANAGER and person.pod_id == request_pod:
        return None
    return (
        f"it holds someone else's query and results; only its requester, a manager of pod"
        f" {request_pod!r} or an admin may see it"
    )
