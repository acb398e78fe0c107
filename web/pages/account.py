"""The signed-in person's own sessions: see them, end one, or sign out everywhere."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request
from fastapi.responses import Response

from web.auth import REFRESH_COOKIE, CurrentUser
from web.pages.render import page, redirect
from web.surface import surface

router = APIRouter()


@router.get("/account")
def account(request: Request, user: CurrentUser) -> Response:
    web = surface(request)
    current = getattr(request.state, "new_tokens", None)
    refresh = current.refresh if current else request.cookies.get(REFRESH_COOKIE)
    return page(request, "account.html", user, sessions=web.auth.sessions_of(user.id, refresh))


@router.post("/account/sessions/{session_id}/revoke")
def revoke(session_id: uuid.UUID, request: Request, user: CurrentUser) -> Response:
    surface(request).auth.revoke_session(user.id, session_id)
    return redirect("/account")
