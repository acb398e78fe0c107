"""Approve or reject: the same rules as Slack (managers of the pod or admins, never one's own
request, and a confirmation for anything but a read)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from web import actions
from web.auth import CurrentUser
from web.presenters import policy_json, request_json
from web.surface import surface

router = APIRouter(tags=["decisions"])


class ApproveIn(BaseModel):
    confirm: bool = Field(default=False, description="required for anything but a read")


class RejectIn(BaseModel):
    reason: str = Field(max_length=10_000)


@router.get("/approvals")
def pending_for_me(user: CurrentUser, request: Request) -> dict:
    requests = surface(request).core.requests
    pending = requests.pending_for(user, limit=100)
    states = requests.policy_states(pending)
    return {"requests": [{**request_json(r), "policy": policy_json(states[r.id])} for r in pending]}


@router.post("/requests/{request_id}/approve")
def approve(request_id: str, user: CurrentUser, request: Request, body: ApproveIn | None = None):
    confirmed = body.confirm if body else False
    return request_json(actions.approve(surface(request), user, request_id, confirmed), full=True)


@router.post("/requests/{request_id}/reject")
def reject(request_id: str, body: RejectIn, user: CurrentUser, request: Request) -> dict:
    return request_json(actions.reject(surface(request), user, request_id, body.reason), full=True)
