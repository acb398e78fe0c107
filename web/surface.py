"""What every web route needs, built once per app: core, sign-in, listings, templates."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from fastapi import Request
from fastapi.templating import Jinja2Templates

from core.auth import AuthService, resolve_jwt_secret
from core.history import HistoryService
from core.settings import Settings
from core.wiring import Core

HERE = Path(__file__).parent
T = TypeVar("T")
DEFAULT_PUBLIC_URL = "http://localhost:3000"
# Browsers treat these as secure contexts without TLS; anywhere else cookies need TLS.
LOCAL_ORIGINS = ("http://localhost", "http://127.0.0.1")


# Threads that may run web work (portal queries) at once: one waits on the database while the
# other builds its page. More only interleave under the GIL, and pay for it in switches (at ten
# concurrent listings, four threads cost 10% more CPU a request than two).
WEB_THREADS = 2


@dataclass
class WebSurface:
    core: Core
    settings: Settings
    auth: AuthService
    history: HistoryService
    templates: Jinja2Templates
    public_url: str
    secure_cookies: bool
    limiter: anyio.CapacityLimiter | None = None

    async def run(self, call: Callable[..., T], *args: Any) -> T:
        """Run blocking work (portal queries) in a thread, at most WEB_THREADS at once."""
        if self.limiter is None:  # created in the event loop that uses it
            self.limiter = anyio.CapacityLimiter(WEB_THREADS)
        return await anyio.to_thread.run_sync(call, *args, limiter=self.limiter)


def build_surface(core: Core, settings: Settings, auth: AuthService | None = None) -> WebSurface:
    public_url = (settings.public_url or DEFAULT_PUBLIC_URL).rstrip("/")
    if auth is None:
        auth = AuthService(core.sessions, resolve_jwt_secret(settings), core.events, public_url)
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    return WebSurface(
        core=core,
        settings=settings,
        auth=auth,
        history=HistoryService(core.sessions),
        templates=templates,
        public_url=public_url,
        secure_cookies=not public_url.startswith(LOCAL_ORIGINS),
    )


def surface(request: Request) -> WebSurface:
    return request.app.state.web
