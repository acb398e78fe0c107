"""One mapping from core's errors to HTTP answers: JSON for the API, a page for browsers.

API errors are `{"error": {"code", "message", "field"}}` with core's own sentences (the ones
Slack shows).
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException

from core.auth import AuthFailed, Throttled
from core.errors import (
    DbqueryError,
    InvalidSubmission,
    InvalidTransition,
    NotAllowed,
    NotFound,
    NotRegistered,
)
from web.auth import CsrfFailed
from web.surface import surface

STATUS = (
    (AuthFailed, 401, "unauthenticated"),
    (Throttled, 429, "throttled"),
    (CsrfFailed, 403, "csrf"),
    (InvalidSubmission, 422, "invalid"),
    (NotFound, 404, "not_found"),
    (NotRegistered, 403, "not_registered"),
    (NotAllowed, 403, "forbidden"),
    (InvalidTransition, 409, "conflict"),
    (DbqueryError, 400, "error"),
)
HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}


def wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def error_body(code: str, message: str, field: str | None = None) -> dict:
    return {"error": {"code": code, "message": message, "field": field}}


def classify(exc: DbqueryError) -> tuple[int, str]:
    for kind, status, code in STATUS:
        if isinstance(exc, kind):
            return status, code
    return 400, "error"


def error_page(request: Request, status: int, message: str) -> Response:
    web = surface(request)
    return web.templates.TemplateResponse(
        request,
        "error.html",
        {"message": message, "status": status, "user": getattr(request.state, "principal", None)},
        status_code=status,
    )


async def on_domain_error(request: Request, exc: DbqueryError) -> Response:
    status, code = classify(exc)
    headers = {}
    if isinstance(exc, Throttled):
        headers["Retry-After"] = str(exc.retry_after_s)
    if wants_json(request):
        field = exc.field if isinstance(exc, InvalidSubmission) else None
        return JSONResponse(error_body(code, exc.message, field), status, headers=headers)
    if isinstance(exc, AuthFailed):
        request.state.clear_session = True
        return RedirectResponse("/signin", status_code=303)
    return error_page(request, status, exc.message)


async def on_validation_error(request: Request, exc: RequestValidationError) -> Response:
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid input"}
    loc = [str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path")]
    field = loc[-1] if loc else None
    message = f"{field}: {first.get('msg', 'invalid')}" if field else str(first.get("msg"))
    if wants_json(request):
        return JSONResponse(error_body("invalid", message, field), 422)
    return error_page(request, 422, message)


async def on_http_error(request: Request, exc: HTTPException) -> Response:
    message = {404: "there is nothing here", 405: "that method is not allowed here"}.get(
        exc.status_code, str(exc.detail)
    )
    if wants_json(request):
        code = HTTP_CODES.get(exc.status_code, "error")
        return JSONResponse(error_body(code, message), exc.status_code, headers=exc.headers)
    return error_page(request, exc.status_code, message)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DbqueryError, on_domain_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(HTTPException, on_http_error)
