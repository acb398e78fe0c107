"""Rendering a page: the template, the signed-in person, the CSRF token and the nav."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse

from core.lifecycle import Role
from core.records import UserRecord
from web.surface import surface

STATUS_LABELS = {
    "pending": "Pending",
    "approved": "Approved",
    "rejected": "Rejected",
    "executing": "Running",
    "completed": "Completed",
    "failed": "Failed",
}


def when(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M} UTC" if value else "—"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def page(
    request: Request,
    template: str,
    user: UserRecord | None = None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    web = surface(request)
    env = web.templates.env
    env.filters.setdefault("when", when)
    env.filters.setdefault("duration", duration)
    env.globals.setdefault("STATUS_LABELS", STATUS_LABELS)
    nav = []
    if user is not None:
        nav = [("/requests/new", "New request"), ("/requests", "My requests")]
        if user.role != Role.DEVELOPER:
            nav += [("/approvals", "Approvals"), ("/history", "History")]
        nav.append(("/dashboard", "Dashboard"))
        if user.role == Role.ADMIN:
            nav.append(("/users", "Users"))
    return web.templates.TemplateResponse(
        request,
        template,
        {
            "user": user,
            "csrf_token": request.state.csrf,
            "nav": nav,
            "path": request.url.path,
            **context,
        },
        status_code=status_code,
    )


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def safe_next(target: str | None) -> str:
    """Only a path on this site (never //host or a scheme), so a link cannot send people away."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/requests"
