"""Requests waiting for the signed-in person's decision."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from web import actions
from web.auth import CurrentUser
from web.pages.render import page
from web.surface import surface

router = APIRouter()


@router.get("/approvals")
def approvals(request: Request, user: CurrentUser) -> Response:
    web = surface(request)
    pending = web.core.requests.pending_for(user, limit=100)
    states = web.core.requests.policy_states(pending)
    items = [(r, actions.analysis_of(web, r), states[r.id]) for r in pending]
    return page(request, "approvals.html", user, items=items)
