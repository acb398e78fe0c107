"""The web surface served by uvicorn on a free port, over a fresh portal database.

Tests talk to it over real HTTP (httpx, Chromium); core's events reach a recorder, which
stands in for the Slack subscriber where a test needs to read a private notice.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import uvicorn

from core.catalogue import Catalogue
from core.events import Event, LifecycleEvent, PrivateNotice
from core.settings import Settings
from core.wiring import Core, build_core
from tests.conftest import free_port, wait_until
from tests.portal import People, add_people, fresh_portal_url, make_catalogue
from web import create_app
from web.surface import WebSurface

JWT_SECRET = "test-secret-" + "x" * 40


@dataclass
class Recorder:
    events: list[Event] = field(default_factory=list)

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def notices_to(self, email: str) -> list[PrivateNotice]:
        return [e for e in self.events if isinstance(e, PrivateNotice) and e.person.email == email]

    def lifecycle(self) -> list[LifecycleEvent]:
        return [e for e in self.events if isinstance(e, LifecycleEvent)]

    def link_for(self, email: str) -> str:
        notices = wait_until(lambda: self.notices_to(email), 5, f"a private notice to {email}")
        return notices[-1].link_url


@dataclass
class WebServer:
    url: str
    core: Core
    web: WebSurface
    people: People
    recorder: Recorder
    server: uvicorn.Server
    thread: threading.Thread

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=20, **kwargs)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.core.engine.dispose()


def start_web(
    url: str,
    *,
    catalogue: Catalogue | None = None,
    people: People | None = None,
    settings: dict | None = None,
    results_dir: Path | None = None,
    mount: Callable | None = None,
) -> WebServer:
    port = free_port()
    values = {
        "DBQUERY_DATABASE_URL": url,
        "DBQUERY_JWT_SECRET": JWT_SECRET,
        "DBQUERY_PUBLIC_URL": f"http://127.0.0.1:{port}",
        **({"DBQUERY_RESULTS_DIR": str(results_dir)} if results_dir else {}),
        **(settings or {}),
    }
    config = Settings(**values)
    core = build_core(config, catalogue or make_catalogue())
    recorder = Recorder()
    core.events.subscribe("test recorder", recorder)
    app = create_app(core, config)
    if mount is not None:
        mount(app, core)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, name=f"web-{port}", daemon=True)
    thread.start()
    wait_until(lambda: server.started, 15, "the web server to start")
    if people is None:
        people = add_people(core.users)
    return WebServer(
        f"http://127.0.0.1:{port}", core, app.state.web, people, recorder, server, thread
    )


def portal(backend: str, make_pg_database, tmp_path: Path) -> str:
    return fresh_portal_url(backend, make_pg_database, tmp_path)
