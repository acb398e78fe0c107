"""`dbquery serve`: Slack's routes, the web portal and API, health, metrics and the worker in
one process and one HTTP app."""

from __future__ import annotations

import gc
import logging

from fastapi import FastAPI

import web
from bot.server import Runtime
from bot.server import run as run_slack_server
from core.auth import resolve_jwt_secret
from core.settings import Settings

log = logging.getLogger("dbquery.serve")


def add_web(settings: Settings):
    """What `serve` adds to Slack's HTTP app: the portal and its API (unless DBQUERY_WEB=off)."""

    def extend(http_app: FastAPI, runtime: Runtime) -> None:
        if settings.web:
            web.install(http_app, runtime.core, settings)
            log.info("web portal at %s", settings.public_url or "/")
        else:
            log.info("the web portal is off (DBQUERY_WEB=off)")
        # What start-up built (catalogue, mappers, parsers, templates) lives as long as the
        # process. Frozen, the collector stops walking it again and again: a full collection
        # otherwise stalls every request in flight (the API benchmark's p99 went from ~135 ms
        # to ~50 ms at ten concurrent listings).
        gc.freeze()

    return extend


def run(settings: Settings, host: str, port: int) -> int:
    if settings.web:
        resolve_jwt_secret(settings)  # a missing or short secret stops here, before Slack
    return run_slack_server(settings, host, port, extend=add_web(settings))
