"""Builds the Bolt app: the middleware resolving who is asking, then every listener module.

Listeners acknowledge and hand their Slack calls to the follow-up pool; the two that decide
before acknowledging are named in their modules (a submitted form is checked and stored
within a budget, a rejection is written so its problems show on the reason field). The pools
are described in bot/services.py.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlparse

from slack_bolt import App, BoltResponse
from slack_bolt.error import BoltUnhandledRequestError
from slack_sdk import WebClient

from bot.listeners import approve, commands, home, rerun, submit
from bot.middleware import make_portal_user_middleware
from bot.services import LISTENER_THREADS, Services
from bot.submit_form import ScriptFetcher

log = logging.getLogger("dbquery.bot")


class _GivenClientNotice(logging.Filter):
    """Bolt reads SLACK_BOT_TOKEN itself and warns it is unused when a client is passed in; the
    client was built from that same token, so the warning would only confuse operators."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "`token` will be unused" not in record.getMessage()


_BOLT_LOG = logging.getLogger("dbquery.bolt")
_BOLT_LOG.addFilter(_GivenClientNotice())


def create_bolt_app(
    services: Services,
    client: WebClient,
    *,
    signing_secret: str | None,
    listener_threads: int = LISTENER_THREADS,
) -> App:
    """The Bolt app for HTTP or Socket Mode (the signing secret is unused in Socket Mode)."""
    app = App(
        client=client,
        signing_secret=signing_secret or "",
        process_before_response=False,
        listener_executor=ThreadPoolExecutor(listener_threads, thread_name_prefix="dbquery-slack"),
        logger=_BOLT_LOG,
        raise_error_for_unhandled_request=True,
    )
    app.use(make_portal_user_middleware(services))
    scripts = ScriptFetcher(
        token=client.token or "",
        trusted_hosts={urlparse(client.base_url).hostname or "slack.com"},
    )
    commands.register(app, services)
    submit.register(app, services, scripts)
    approve.register(app, services)
    rerun.register(app, services)
    home.register(app, services)

    @app.error
    def on_error(error: Exception, body: dict[str, Any]) -> BoltResponse | None:
        if isinstance(error, BoltUnhandledRequestError):
            # A payload nobody listens for (a button or modal of an older version of the app):
            # acknowledged, so Slack neither shows an error nor delivers it again.
            log.info("no listener for a %s payload; acknowledged", _kind_of(body))
            return BoltResponse(status=200, body="")
        log.error("a Slack listener failed: %s", type(error).__name__, exc_info=error)
        return None

    return app


def _kind_of(body: dict[str, Any]) -> str:
    kind = body.get("type") or ("slash command" if body.get("command") else "unknown")
    return str(kind)[:40]


__all__ = ["create_bolt_app"]
