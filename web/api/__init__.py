"""The JSON API under /api/v1, one router per resource; OpenAPI at /api/docs."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from web.api import admin, auth, catalogue, decisions, requests
from web.auth import check_csrf

PREFIX = "/api/v1"


def api_router() -> APIRouter:
    router = APIRouter(prefix=PREFIX, dependencies=[Depends(check_csrf)])
    for module in (auth, catalogue, requests, decisions, admin):
        router.include_router(module.router)
    return router
