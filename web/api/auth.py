"""Sign in (one-time link or password), renew, sign out, and the caller's own sessions."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, status
from pydantic import BaseModel, Field

from core.auth import LINK_SENT, Tokens
from web.auth import CurrentPrincipal, CurrentUser, bearer_token
from web.presenters import user_json
from web.surface import surface

router = APIRouter(prefix="/auth", tags=["auth"])


class EmailIn(BaseModel):
    email: str = Field(max_length=255)


class LoginIn(BaseModel):
    email: str = Field(max_length=255)
    password: str = Field(max_length=4096)


class RefreshIn(BaseModel):
    refresh_token: str = Field(max_length=200)


class LinkIn(BaseModel):
    token: str = Field(max_length=200)


class LogoutIn(BaseModel):
    refresh_token: str | None = Field(default=None, max_length=200)


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def tokens_json(tokens: Tokens) -> dict:
    return {
        "token_type": "bearer",
        "access_token": tokens.access,
        "expires_at": tokens.access_expires_at.isoformat(),
        "refresh_token": tokens.refresh,
        "refresh_expires_at": tokens.refresh_expires_at.isoformat(),
        "user": user_json(tokens.user),
    }


@router.post("/sign-in-link", status_code=status.HTTP_202_ACCEPTED)
def send_sign_in_link(body: EmailIn, request: Request) -> dict:
    """DM a one-time sign-in link to the person's linked Slack account (same answer always)."""
    surface(request).auth.send_sign_in_link(body.email)
    return {"message": LINK_SENT}


@router.post("/sign-in-link/redeem")
def redeem_sign_in_link(body: LinkIn, request: Request) -> dict:
    return tokens_json(surface(request).auth.redeem_sign_in_link(body.token))


@router.post("/login")
def login(body: LoginIn, request: Request) -> dict:
    web = surface(request)
    return tokens_json(
        web.auth.password_sign_in(body.email, body.password, client_address(request))
    )


@router.post("/refresh")
def refresh(body: RefreshIn, request: Request) -> dict:
    return tokens_json(surface(request).auth.refresh(body.refresh_token))


@router.post("/logout")
def logout(principal: CurrentPrincipal, request: Request, body: LogoutIn | None = None) -> dict:
    surface(request).auth.logout(bearer_token(request), body.refresh_token if body else None)
    return {"message": "signed out"}


@router.post("/logout-all")
def logout_all(user: CurrentUser, request: Request) -> dict:
    surface(request).auth.sign_out_everywhere(user.id)
    return {"message": "signed out everywhere"}


@router.get("/me")
def me(user: CurrentUser) -> dict:
    return user_json(user)


@router.get("/sessions")
def my_sessions(user: CurrentUser, request: Request) -> dict:
    sessions = surface(request).auth.sessions_of(user.id, None)
    return {
        "sessions": [
            {
                "id": str(s.id),
                "renewed_at": s.created_at.isoformat(),
                "expires_at": s.expires_at.isoformat(),
            }
            for s in sessions
        ]
    }


@router.delete("/sessions/{session_id}")
def revoke_session(session_id: uuid.UUID, user: CurrentUser, request: Request) -> dict:
    surface(request).auth.revoke_session(user.id, session_id)
    return {"message": "session revoked"}
