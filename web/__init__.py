"""The browser and HTTP API surface: pages under /, the JSON API under /api/v1.

`install(app, core, settings)` adds the web surface to an existing FastAPI app (`serve` adds
it beside Slack's routes); `create_app(core, settings)` is a complete app of its own.
Never imports bot/: what happens after a transition reaches Slack through core's events.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from core.auth import AuthService
from core.settings import Settings
from core.wiring import Core
from web.api import PREFIX, api_router
from web.auth import HeadersAndCookies
from web.errors import install_error_handlers
from web.pages import pages_router
from web.surface import HERE, WebSurface, build_surface

OPENAPI_PATH = "/api/openapi.json"
DOCS_PATH = "/api/docs"


def install(
    app: FastAPI, core: Core, settings: Settings, *, auth: AuthService | None = None
) -> WebSurface:
    web = build_surface(core, settings, auth)
    app.state.web = web
    api = api_router()
    app.include_router(api)
    app.include_router(pages_router())
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    app.add_middleware(HeadersAndCookies)
    install_error_handlers(app)
    schema: dict = {}

    @app.get(OPENAPI_PATH, include_in_schema=False)
    def openapi() -> JSONResponse:
        if not schema:
            schema.update(
                get_openapi(
                    title="dbquery API",
                    version="1",
                    description="Submit, decide and follow database requests. "
                    "Authenticate with `Authorization: Bearer <access token>` "
                    f"(POST {PREFIX}/auth/login or {PREFIX}/auth/sign-in-link/redeem).",
                    routes=api.routes,
                )
            )
        return JSONResponse(schema)

    @app.get(DOCS_PATH, include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=OPENAPI_PATH, title="dbquery API")

    return web


def create_app(core: Core, settings: Settings, *, auth: AuthService | None = None) -> FastAPI:
    """The web surface alone (no Slack, no worker): what tests and a web-only process serve."""
    app = FastAPI(title="dbquery web", docs_url=None, redoc_url=None, openapi_url=None)
    install(app, core, settings, auth=auth)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> JSONResponse:
        try:
            with core.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except SQLAlchemyError:
            return JSONResponse({"status": "unavailable"}, status_code=503)
        return JSONResponse({"status": "ok"})

    return app
