"""Administration: users (add, change, activate, set-password link) and statistics."""

from __future__ import annotations

from dataclasses import asdict
from typing import Literal

from fastapi import APIRouter, Request, status
from pydantic import BaseModel, Field

from web.auth import CurrentAdmin
from web.presenters import user_json
from web.surface import surface

router = APIRouter(prefix="/admin", tags=["admin"])


class UserIn(BaseModel):
    email: str = Field(max_length=255)
    name: str = Field(max_length=255)
    role: Literal["developer", "manager", "admin"]
    pod: str | None = Field(default=None, max_length=100)
    slack_id: str | None = Field(default=None, max_length=50)


class UserChange(BaseModel):
    role: Literal["developer", "manager", "admin"] | None = None
    pod: str | None = Field(default=None, max_length=100)
    slack_id: str | None = Field(default=None, max_length=50)
    active: bool | None = None


@router.get("/users")
def list_users(admin: CurrentAdmin, request: Request) -> dict:
    return {"users": [user_json(u) for u in surface(request).core.users.list()]}


@router.post("/users", status_code=status.HTTP_201_CREATED)
def add_user(body: UserIn, admin: CurrentAdmin, request: Request) -> dict:
    user = surface(request).core.users.add(
        email=body.email, name=body.name, role=body.role, pod=body.pod, slack_id=body.slack_id
    )
    return user_json(user)


@router.patch("/users/{email}")
def change_user(email: str, body: UserChange, admin: CurrentAdmin, request: Request) -> dict:
    web = surface(request)
    user = web.core.users.update(email, role=body.role, pod=body.pod, slack_id=body.slack_id)
    if body.active is not None and body.active != user.is_active:
        user = web.core.users.set_active(email, body.active)
    # Sessions this process verified a moment ago must not outlive the change here.
    web.auth.forget_verified()
    return user_json(user)


@router.post("/users/{email}/set-password-link", status_code=status.HTTP_202_ACCEPTED)
def send_set_password_link(email: str, admin: CurrentAdmin, request: Request) -> dict:
    user = surface(request).auth.send_set_password_link(email)
    return {"message": f"a set-password link is on its way to {user.email} in Slack"}


@router.get("/stats")
def stats(admin: CurrentAdmin, request: Request, days: int = 30) -> dict:
    result = surface(request).history.stats(admin, days=max(1, min(days, 365)))
    return {
        "days": [d.isoformat() for d in result.days],
        "per_day": result.per_day,
        "totals": result.totals,
        "time_to_decision_s": asdict(result.decision),
        "execution_time_s": asdict(result.execution),
        "busiest_instances": [{"name": n, "requests": c} for n, c in result.busiest_instances],
        "busiest_requesters": [{"email": e, "requests": c} for e, c in result.busiest_requesters],
    }
