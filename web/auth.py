"""Who is asking, for the web: access tokens from a Bearer header or HttpOnly cookies, the
silent renewal of a browser session, CSRF checks, and the security headers of every answer.

Browsers hold tokens only in HttpOnly, SameSite=Lax cookies (Secure unless the public URL is
a local http one). An unsafe method must carry the CSRF token (the double-submit cookie, in
an X-CSRF-Token header or a csrf_token form field), unless it authenticates with a Bearer
header or is a JSON call with no session cookie: a browser sends neither across sites without
a CORS preflight, which is never granted.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request, Response
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.auth import AuthFailed, Principal, Tokens
from core.errors import DbqueryError, NotAllowed
from core.lifecycle import Role
from core.records import UserRecord
from web.surface import surface

ACCESS_COOKIE = "dbq_access"
REFRESH_COOKIE = "dbq_refresh"
CSRF_COOKIE = "dbq_csrf"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")

CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "object-src 'none'"
)
# Swagger UI's page loads its bundle from jsDelivr and starts it with an inline script.
DOCS_CSP = (
    "default-src 'self'; img-src 'self' data: https://fastapi.tiangolo.com; "
    "style-src 'self' https://cdn.jsdelivr.net; "
    "script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; frame-ancestors 'none'; "
    "base-uri 'none'; object-src 'none'"
)


class CsrfFailed(DbqueryError):
    pass


def bearer_token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _principal(request: Request) -> Principal:
    web = surface(request)
    bearer = bearer_token(request)
    if bearer:
        return web.auth.authenticate(bearer)
    access = request.cookies.get(ACCESS_COOKIE)
    refresh = request.cookies.get(REFRESH_COOKIE)
    if access:
        try:
            return web.auth.authenticate(access)
        except AuthFailed:
            if not refresh:
                raise
    if not refresh:
        raise AuthFailed("sign in to dbquery first")
    # The browser's access token expired (or was never sent): renew the session silently.
    try:
        tokens = web.auth.refresh(refresh)
    except AuthFailed:
        request.state.clear_session = True
        raise
    request.state.new_tokens = tokens
    return web.auth.authenticate(tokens.access)


def _recently_verified(request: Request) -> Principal | None:
    """The principal of a token checked moments ago: answered on the event loop, without a
    thread, for the common case of a client making one call after another."""
    token = bearer_token(request) or request.cookies.get(ACCESS_COOKIE)
    return surface(request).auth.recently_verified(token) if token else None


async def current_principal(request: Request) -> Principal:
    cached = getattr(request.state, "principal", None)
    if cached is None:
        cached = _recently_verified(request) or await surface(request).run(_principal, request)
        request.state.principal = cached
    return cached


async def current_user(principal: Annotated[Principal, Depends(current_principal)]) -> UserRecord:
    return principal.user


async def current_admin(user: Annotated[UserRecord, Depends(current_user)]) -> UserRecord:
    if user.role != Role.ADMIN:
        raise NotAllowed("only a dbquery admin may do this")
    return user


CurrentUser = Annotated[UserRecord, Depends(current_user)]
CurrentAdmin = Annotated[UserRecord, Depends(current_admin)]
CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


async def optional_user(request: Request) -> UserRecord | None:
    if not (
        bearer_token(request)
        or request.cookies.get(ACCESS_COOKIE)
        or request.cookies.get(REFRESH_COOKIE)
    ):
        return None
    try:
        return (await current_principal(request)).user
    except AuthFailed:
        return None


async def check_csrf(request: Request) -> None:
    if request.method in SAFE_METHODS or bearer_token(request):
        return
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    has_session = ACCESS_COOKIE in request.cookies or REFRESH_COOKIE in request.cookies
    if content_type == "application/json" and not has_session:
        return
    sent = request.headers.get(CSRF_HEADER)
    if not sent and content_type in FORM_TYPES:
        form = await request.form()
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    expected = request.cookies.get(CSRF_COOKIE)
    if not (sent and expected and hmac.compare_digest(sent, expected)):
        raise CsrfFailed(
            "the form is out of date or came from another site; reload the page and try again"
        )


def csrf_token(request: Request) -> str:
    return request.state.csrf


def start_session(request: Request, tokens: Tokens) -> None:
    request.state.new_tokens = tokens


def end_session(request: Request) -> None:
    request.state.clear_session = True


class HeadersAndCookies:
    """ASGI middleware: security headers on every answer; session and CSRF cookies where they
    changed (a sign-in, a silent renewal, a sign-out)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        state = request.state
        state.csrf = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)
        state.new_tokens = None
        state.clear_session = False

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                path = scope["path"]
                headers["Content-Security-Policy"] = DOCS_CSP if path == "/api/docs" else CSP
                headers["X-Frame-Options"] = "DENY"
                headers["Referrer-Policy"] = "no-referrer"
                headers["X-Content-Type-Options"] = "nosniff"
                if not path.startswith("/static/") and "cache-control" not in headers:
                    headers["Cache-Control"] = "no-store"
                for cookie in _cookies(request):
                    headers.append("set-cookie", cookie)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _cookies(request: Request) -> list[str]:
    web = surface(request)
    state = request.state
    jar = Response()
    cookie = {"secure": web.secure_cookies, "samesite": "lax", "path": "/"}
    if CSRF_COOKIE not in request.cookies:
        # Readable by the page's own script, which echoes it in a header; useless elsewhere.
        jar.set_cookie(CSRF_COOKIE, state.csrf, httponly=False, **cookie)
    tokens: Tokens | None = state.new_tokens
    if tokens is not None:
        now = datetime.now(UTC)
        jar.set_cookie(
            ACCESS_COOKIE,
            tokens.access,
            max_age=int((tokens.access_expires_at - now).total_seconds()),
            httponly=True,
            **cookie,
        )
        jar.set_cookie(
            REFRESH_COOKIE,
            tokens.refresh,
            max_age=int((tokens.refresh_expires_at - now).total_seconds()),
            httponly=True,
            **cookie,
        )
    elif state.clear_session:
        jar.delete_cookie(ACCESS_COOKIE, httponly=True, **cookie)
        jar.delete_cookie(REFRESH_COOKIE, httponly=True, **cookie)
    return [value.decode("latin-1") for key, value in jar.raw_headers if key == b"set-cookie"]
