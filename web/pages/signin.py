"""Signing in (a one-time link over Slack, or a password), setting a password, signing out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from core.auth import LINK_SENT, AuthFailed, Throttled
from core.errors import InvalidSubmission
from web.api.auth import client_address
from web.auth import ACCESS_COOKIE, REFRESH_COOKIE, CurrentUser, end_session, optional_user
from web.errors import classify
from web.pages.render import page, redirect, safe_next
from web.surface import surface

router = APIRouter()


@router.get("/signin")
async def signin_page(request: Request, next: str | None = None, done: str | None = None):
    if await optional_user(request) is not None:
        return redirect(safe_next(next))
    notice = "Your password is set. Sign in with it." if done == "password" else None
    return page(request, "signin.html", next=safe_next(next), notice=notice)


@router.post("/signin/link")
def send_link(request: Request, email: Annotated[str, Form(max_length=255)]) -> Response:
    surface(request).auth.send_sign_in_link(email)
    return page(request, "signin.html", notice=LINK_SENT, email=email, next="/requests")


@router.post("/signin/password")
def password_signin(
    request: Request,
    email: Annotated[str, Form(max_length=255)],
    password: Annotated[str, Form(max_length=4096)],
    next: Annotated[str, Form(max_length=500)] = "/requests",
) -> Response:
    web = surface(request)
    try:
        tokens = web.auth.password_sign_in(email, password, client_address(request))
    except (AuthFailed, Throttled) as exc:
        status, _ = classify(exc)
        return page(
            request,
            "signin.html",
            status_code=status,
            error=exc.message,
            email=email,
            next=safe_next(next),
            tab="password",
        )
    request.state.new_tokens = tokens
    return redirect(safe_next(next))


@router.get("/auth/link")
def link_page(request: Request, token: str = "") -> Response:
    # Signing in takes a click: Slack (and mail scanners) open links to preview them, and a
    # preview must not use up a single-use link.
    return page(request, "link.html", token=token[:200])


@router.post("/auth/link")
def redeem_link(request: Request, token: Annotated[str, Form(max_length=200)]) -> Response:
    try:
        tokens = surface(request).auth.redeem_sign_in_link(token)
    except AuthFailed as exc:
        return page(request, "signin.html", status_code=401, error=exc.message, next="/requests")
    request.state.new_tokens = tokens
    return redirect("/requests")


@router.get("/auth/set-password")
def set_password_page(request: Request, token: str = "") -> Response:
    return page(request, "set_password.html", token=token[:200])


@router.post("/auth/set-password")
def set_password(
    request: Request,
    token: Annotated[str, Form(max_length=200)],
    password: Annotated[str, Form(max_length=4096)],
    repeat: Annotated[str, Form(max_length=4096)],
) -> Response:
    try:
        if password != repeat:
            raise InvalidSubmission("repeat", "the two passwords differ")
        surface(request).auth.set_password_with_link(token, password)
    except (AuthFailed, InvalidSubmission) as exc:
        status, _ = classify(exc)
        return page(
            request, "set_password.html", status_code=status, token=token, error=exc.message
        )
    end_session(request)
    return redirect("/signin?done=password")


@router.post("/signout")
def signout(request: Request) -> Response:
    surface(request).auth.logout(
        request.cookies.get(ACCESS_COOKIE), request.cookies.get(REFRESH_COOKIE)
    )
    end_session(request)
    return redirect("/signin")


@router.post("/signout-everywhere")
def signout_everywhere(request: Request, user: CurrentUser) -> Response:
    surface(request).auth.sign_out_everywhere(user.id)
    end_session(request)
    return redirect("/signin")
