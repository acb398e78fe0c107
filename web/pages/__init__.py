"""Server-rendered pages (Jinja2), with a little vendored JavaScript for live status."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from web.auth import check_csrf
from web.pages import account, admin_users, approvals, dashboard, history, requests, signin


def pages_router() -> APIRouter:
    router = APIRouter(include_in_schema=False, dependencies=[Depends(check_csrf)])
    for module in (signin, requests, approvals, history, dashboard, admin_users, account):
        router.include_router(module.router)
    return router
