"""Users, for admins: add, change role, pod or Slack id, (de)activate, send a set-password link."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from core.errors import DbqueryError
from web.auth import CurrentAdmin
from web.errors import classify
from web.pages.render import page, redirect
from web.surface import surface

router = APIRouter()
Text = Annotated[str, Form(max_length=255)]


def _users_page(request: Request, admin, status_code: int = 200, **context) -> Response:
    web = surface(request)
    return page(
        request,
        "users.html",
        admin,
        status_code=status_code,
        users=web.core.users.list(),
        pods=web.core.catalogue.pods,
        **context,
    )


@router.get("/users")
def users(request: Request, admin: CurrentAdmin, notice: str | None = None) -> Response:
    return _users_page(request, admin, notice=notice)


def _acting(request: Request, admin, action, done: str) -> Response:
    try:
        action()
    except DbqueryError as exc:
        return _users_page(request, admin, classify(exc)[0], error=exc.message)
    return redirect(f"/users?notice={done}")


@router.post("/users")
def add_user(
    request: Request,
    admin: CurrentAdmin,
    email: Text,
    name: Text,
    role: Text,
    pod: Text = "",
    slack_id: Text = "",
) -> Response:
    web = surface(request)
    return _acting(
        request,
        admin,
        lambda: web.core.users.add(
            email=email, name=name, role=role, pod=pod or None, slack_id=slack_id or None
        ),
        "added",
    )


@router.post("/users/{email}")
def change_user(
    email: str,
    request: Request,
    admin: CurrentAdmin,
    role: Text,
    pod: Text = "",
    slack_id: Text = "",
    active: Annotated[str | None, Form()] = None,
) -> Response:
    web = surface(request)

    def change() -> None:
        user = web.core.users.update(email, role=role, pod=pod, slack_id=slack_id)
        if bool(active) != user.is_active:
            web.core.users.set_active(email, bool(active))
        web.auth.forget_verified()

    return _acting(request, admin, change, "saved")


@router.post("/users/{email}/set-password-link")
def send_set_password_link(email: str, request: Request, admin: CurrentAdmin) -> Response:
    web = surface(request)
    return _acting(request, admin, lambda: web.auth.send_set_password_link(email), "link-sent")
