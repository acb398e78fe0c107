"""`/dbquery` and its subcommands: new (the default), help, list, status, pending.

Every answer goes out after the acknowledgement: the modal with views.open (its trigger_id is
valid for 3 seconds), text answers through the command's response_url.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App, BoltContext
from slack_bolt.context.respond import Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.context import Services, analyses_for, portal_user
from bot.listeners.rerun import open_rerun_modal
from bot.views.commands import help_text, pending_message, request_list_message, status_message
from bot.views.submit import submit_modal
from core.errors import DbqueryError
from core.lifecycle import why_cannot_view
from core.records import RequestRecord, UserRecord

COMMAND = "/dbquery"
LIST_LIMIT = 10
PENDING_LIMIT = 20

log = logging.getLogger("dbquery.bot.commands")


def parse_subcommand(text: str | None) -> tuple[str, str]:
    """('status', 'abc123') from 'status abc123'; an empty text means a new request."""
    word, _, rest = (text or "").strip().partition(" ")
    return word.lower(), rest.strip()


def status_of(user: UserRecord, request: RequestRecord) -> dict[str, Any]:
    """The request's status, for the people it concerns only (it shows the query and results)."""
    reason = why_cannot_view(user, requester_id=request.requester.id, request_pod=request.pod_id)
    if reason:
        return {"text": f"You can't see request `{request.short_id}`: {reason}."}
    return status_message(request)


def register(app: App, services: Services) -> None:
    core = services.core

    def open_submit_modal(client: WebClient, trigger_id: str) -> None:
        client.views_open(trigger_id=trigger_id, view=submit_modal(core.catalogue))

    def answer(user: UserRecord, subcommand: str, argument: str) -> dict[str, Any]:
        if subcommand == "list":
            mine = core.requests.recent(user_id=user.id, status=argument or None, limit=LIST_LIMIT)
            return request_list_message(mine)
        if subcommand == "status":
            if not argument:
                return {"text": "Usage: `/dbquery status <request id or its first 8 characters>`"}
            return status_of(user, core.requests.find(argument))
        if subcommand == "pending":
            waiting = core.requests.pending_for(user, limit=PENDING_LIMIT)
            return pending_message(waiting, analyses_for(waiting))
        return {"text": help_text()}

    @app.command(COMMAND)
    def dbquery_command(
        ack: Ack, command: dict[str, Any], context: BoltContext, client: WebClient, respond: Respond
    ) -> None:
        ack()
        services.after_ack(COMMAND, run_subcommand, portal_user(context), command, client, respond)

    def run_subcommand(
        user: UserRecord, command: dict[str, Any], client: WebClient, respond: Respond
    ) -> None:
        subcommand, argument = parse_subcommand(command.get("text"))
        if subcommand == "rerun":
            problem = (
                open_rerun_modal(services, client, user, argument, command["trigger_id"])
                if argument
                else "Usage: `/dbquery rerun <request id or its first 8 characters>`"
            )
            if problem:
                respond(text=problem, response_type="ephemeral")
            return
        if subcommand in ("", "new", "submit"):
            try:
                open_submit_modal(client, command["trigger_id"])
            except SlackApiError as exc:
                log.warning("views.open failed: %s", exc.response.get("error"))
                respond(text="Slack did not open the form; run `/dbquery` again.")
            return
        try:
            message = answer(user, subcommand, argument)
        except DbqueryError as exc:
            message = {"text": exc.message}
        respond(**message, response_type="ephemeral")


__all__ = ["COMMAND", "parse_subcommand", "register", "status_of"]
