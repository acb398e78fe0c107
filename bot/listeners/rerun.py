"""Run again: the button on a finished card and `/dbquery rerun <id>` open the submit modal filled
from that request; what is submitted is a new request, linked to it, approved like any other."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App, BoltContext
from slack_bolt.context.respond import Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.errors import ANSWERABLE, explain
from bot.middleware import portal_user
from bot.replies import reply_privately
from bot.services import Services
from bot.views.policy import RERUN_ACTION
from bot.views.submit import rerun_refusal, submit_modal
from core.records import UserRecord

log = logging.getLogger("dbquery.bot.rerun")


def open_rerun_modal(
    services: Services, client: WebClient, user: UserRecord, request_id: str, trigger_id: str
) -> str | None:
    """Open the filled form; the reason when it cannot be (for the person, privately)."""
    core = services.core
    try:
        request = (
            core.requests.find(request_id)
            if len(request_id) < 36
            else core.requests.get(request_id)
        )
        request = core.requests.rerun_source(request.uuid, user.id)
    except ANSWERABLE as exc:
        return explain(exc, RERUN_ACTION)
    refusal = rerun_refusal(request)
    if refusal:
        return refusal
    try:
        client.views_open(trigger_id=trigger_id, view=submit_modal(core.catalogue, rerun=request))
    except SlackApiError as exc:
        log.warning("views.open for a re-run failed: %s", exc.response.get("error"))
        return "Slack did not open the form; try again."
    return None


def register(app: App, services: Services) -> None:
    @app.action(RERUN_ACTION)
    def run_again(
        ack: Ack,
        action: dict[str, Any],
        body: dict[str, Any],
        context: BoltContext,
        client: WebClient,
        respond: Respond,
    ) -> None:
        ack()
        services.after_ack(
            RERUN_ACTION,
            follow_up,
            portal_user(context),
            str(action.get("value") or ""),
            str(body.get("trigger_id") or ""),
            client,
            respond,
        )

    def follow_up(
        user: UserRecord, request_id: str, trigger_id: str, client: WebClient, respond: Respond
    ) -> None:
        problem = open_rerun_modal(services, client, user, request_id, trigger_id)
        if problem:
            reply_privately(client, respond, user.slack_user_id or "", {"text": problem})


__all__ = ["open_rerun_modal", "register"]
