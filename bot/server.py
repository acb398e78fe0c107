"""`dbquery serve`: the Bolt app over HTTP (FastAPI on uvicorn) or Socket Mode, plus the worker.

HTTP serves POST /slack/events (commands, interactivity, events), GET /healthz and
GET /metrics. With SLACK_APP_TOKEN set, Slack's payloads arrive over Socket Mode instead and
HTTP serves only /healthz and /metrics. The worker starts and stops with the HTTP app, so a
SIGTERM lets running queries finish and record their outcome before the process exits.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from slack_bolt import App
from slack_bolt.adapter.starlette.handler import to_starlette_response
from slack_bolt.error import BoltError
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from bot.analyses import RecentAnalyses
from bot.app import create_bolt_app
from bot.intake import MAX_BODY_BYTES, Answer, admit, bolt_request
from bot.metrics import CONTENT_TYPE, Metrics, SlackErrorCounter
from bot.notifier import SlackNotifier
from bot.services import Services, background_executor, follow_up_executor
from bot.socket_mode import SocketModeReceiver
from bot.subscriber import SlackSubscriber
from core.jobs import Worker
from core.settings import Settings
from core.wiring import Core, build_core

WEB_API_TIMEOUT_S = 15
HTTP_GRACE_S = 10  # open HTTP requests get this long after a SIGTERM

log = logging.getLogger("dbquery.server")


@dataclass
class Runtime:
    """Everything `serve` runs, built from settings (tests build it the same way)."""

    core: Core
    client: WebClient
    metrics: Metrics
    notifier: SlackNotifier
    worker: Worker
    services: Services
    bolt_app: App


def make_web_client(settings: Settings, metrics: Metrics) -> WebClient:
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    base_url = (
        settings.slack_api_url
        if settings.slack_api_url.endswith("/")
        else settings.slack_api_url + "/"
    )
    return WebClient(
        token=token,
        base_url=base_url,
        timeout=WEB_API_TIMEOUT_S,
        retry_handlers=[
            SlackErrorCounter(metrics),
            RateLimitErrorRetryHandler(max_retry_count=3),
            ConnectionErrorRetryHandler(max_retry_count=2),
            ServerErrorRetryHandler(max_retry_count=2),
        ],
    )


def build_runtime(settings: Settings, core: Core | None = None) -> Runtime:
    core = core or build_core(settings)
    metrics = Metrics(core.requests.counts_by_status)
    client = make_web_client(settings, metrics)
    services = Services(
        core=core,
        background=background_executor(),
        follow_ups=follow_up_executor(),
        analyses=RecentAnalyses(core.catalogue),
    )
    notifier = SlackNotifier(client, core, services.analyses)
    worker = Worker(core, notifier, on_finished=metrics.execution_finished)
    worker.subscribe(core.events)
    core.events.subscribe("slack", SlackSubscriber(notifier, services.follow_ups))
    secret = (
        settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else None
    )
    bolt_app = create_bolt_app(services, client, signing_secret=secret)
    return Runtime(core, client, metrics, notifier, worker, services, bolt_app)


def portal_db_answers(core: Core) -> bool:
    try:
        with core.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return True
    except SQLAlchemyError as exc:
        log.warning("health check: the portal database does not answer (%s)", type(exc).__name__)
        return False


def create_http_app(
    core: Core,
    bolt_app: App | None,
    worker: Worker | None,
    *,
    metrics: Metrics | None = None,
    on_shutdown: Sequence[Callable[[], object]] = (),
) -> FastAPI:
    """The HTTP side: Slack's endpoint (unless `bolt_app` is None), health and metrics.

    The worker, when given, is started with the app and shut down gracefully with it, after
    the `on_shutdown` calls (which stop other ways in, such as Socket Mode).
    """
    metrics = metrics or Metrics(core.requests.counts_by_status)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if worker is not None:
            await run_in_threadpool(worker.start)
        try:
            yield
        finally:
            # uvicorn re-raises SIGTERM once the app has shut down, so this is the place that
            # is sure to run; code after uvicorn.run() is not.
            for call in on_shutdown:
                await run_in_threadpool(call)
            if worker is not None:
                await run_in_threadpool(stop_worker, worker)

    api = FastAPI(
        title="dbquery", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None
    )

    if bolt_app is not None:
        secret = core.settings.slack_signing_secret
        mount_slack_events(api, bolt_app, secret.get_secret_value() if secret else "", metrics)

    @api.get("/healthz")
    def healthz() -> Response:
        if portal_db_answers(core):
            return JSONResponse({"status": "ok"})
        return JSONResponse(
            {"status": "unavailable", "portal_db": "not answering"}, status_code=503
        )

    @api.get("/metrics")
    def prometheus_metrics() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    return api


def mount_slack_events(
    api: FastAPI, bolt_app: App, secret: str, metrics: Metrics | None = None
) -> None:
    """POST /slack/events: checked by bot.intake (signature, then shape), then Bolt.

    Bolt's dispatch is synchronous; a portal query in the middleware would stall every other
    request on the event loop, so dispatch runs in a thread.
    """

    @api.post("/slack/events")
    async def slack_events(request: Request) -> Response:
        raw = await read_bounded(request, MAX_BODY_BYTES)
        verdict = (
            admit(secret, request.headers, raw)
            if raw is not None
            else Answer(413, "the body is too large")
        )
        if isinstance(verdict, Answer):
            if verdict.status != 200 and metrics is not None:
                metrics.slack_request_refused(verdict.status)
                log.debug("refused a Slack request (%d): %s", verdict.status, verdict.text)
            return PlainTextResponse(verdict.text, status_code=verdict.status)
        response = await run_in_threadpool(
            bolt_app.dispatch, bolt_request(verdict, request.headers)
        )
        return to_starlette_response(response)


async def read_bounded(request: Request, limit: int) -> bytes | None:
    """The body, or None once it passes `limit` bytes (the rest is not read into memory)."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def stop_worker(worker: Worker) -> None:
    # The scheduler stops first, so nothing new is claimed; then running requests finish and
    # record their outcome (a killed process would leave them to be marked interrupted).
    worker.shutdown(wait=True)
    log.info("worker stopped; no request is executing")


def run(
    settings: Settings,
    host: str,
    port: int,
    extend: Callable[[FastAPI, Runtime], None] | None = None,
) -> int:
    """Serve until stopped. `extend` adds other routes to the HTTP app (the web portal)."""
    # The dispatcher runs every 2 seconds; APScheduler would log each run at INFO.
    logging.getLogger("apscheduler").setLevel(max(logging.WARNING, logging.getLogger().level))
    try:
        runtime = build_runtime(settings)
    except BoltError as exc:
        print(f"dbquery: Slack did not accept SLACK_BOT_TOKEN: {exc}", file=sys.stderr)
        return 2
    socket_mode = None
    if settings.slack_app_token:
        socket_mode = SocketModeReceiver(
            runtime.bolt_app, settings.slack_app_token.get_secret_value(), runtime.client
        )
        socket_mode.connect()
        log.info("receiving Slack payloads over Socket Mode")
    cleanup: list[Callable[[], object]] = [] if socket_mode is None else [socket_mode.close]
    cleanup.append(lambda: runtime.services.background.shutdown(wait=False))
    cleanup.append(lambda: runtime.services.follow_ups.shutdown(wait=True))
    http_app = create_http_app(
        runtime.core,
        None if socket_mode else runtime.bolt_app,
        runtime.worker,
        metrics=runtime.metrics,
        on_shutdown=cleanup,
    )
    if extend is not None:
        extend(http_app, runtime)
    uvicorn.run(
        http_app,
        host=host,
        port=port,
        log_level=settings.log_level.lower(),
        access_log=False,
        timeout_graceful_shutdown=HTTP_GRACE_S,
    )
    return 0


__all__ = ["Runtime", "build_runtime", "create_http_app", "make_web_client", "run"]
