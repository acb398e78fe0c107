"""`/dbquery` and its subcommands: new (the default), help, list, status, pending, rerun.

Answers go out after the acknowledgement: the modal with views.open (its trigger_id is valid
for 3 seconds), text answers through the command's response_url. A command that arrives
without the one it needs is answered in the acknowledgement itself.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App, BoltContext
from slack_bolt.context.respond import Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.errors import ANSWERABLE, as_message
from bot.listeners.rerun import open_rerun_modal
from bot.middleware import portal_user
from bot.payloads import COMMAND
from bot.services import Services
from bot.views.commands import help_text, pending_message, request_list_message, status_message
from bot.views.submit import submit_modal
from core.lifecycle import why_cannot_view
from core.records import RequestRecord, UserRecord

NEW_REQUEST = ("", "new", "submit")
RERUN = "rerun"
RERUN_USAGE = "Usage: `/dbquery rerun <request id or its first 8 characters>`"
NO_TRIGGER = "Slack did not send what dbquery needs to open the form; run `/dbquery` again."
UNREADABLE_TEXT = "dbquery cannot read that command: it holds a NUL character."
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
            return pending_message(
                waiting, services.analyses.of_each(waiting), core.requests.policy_states(waiting)
            )
        return {"text": help_text()}

    @app.command(COMMAND)
    def dbquery_command(
        ack: Ack, command: dict[str, Any], context: BoltContext, client: WebClient, respond: Respond
    ) -> None:
        user = portal_user(context)
        subcommand, argument = parse_subcommand(command.get("text"))
        if "\x00" in (command.get("text") or ""):
            ack(text=UNREADABLE_TEXT, response_type="ephemeral")
        elif subcommand in NEW_REQUEST:
            if not command.get("trigger_id"):
                ack(text=NO_TRIGGER, response_type="ephemeral")
                return
            ack()
            services.after_ack(COMMAND, open_form, command["trigger_id"], client, respond)
        elif subcommand == RERUN:
            if not argument:
                ack(text=RERUN_USAGE, response_type="ephemeral")
            elif not command.get("trigger_id"):
                ack(text=NO_TRIGGER, response_type="ephemeral")
            else:
                ack()
                services.after_ack(
                    COMMAND, rerun_form, user, argument, command["trigger_id"], client, respond
                )
        elif not command.get("response_url"):
            # Nowhere to answer later: the answer goes in the acknowledgement itself.
            ack(**text_answer(user, subcommand, argument), response_type="ephemeral")
        else:
            ack()
            services.after_ack(COMMAND, answer_later, user, subcommand, argument, respond)

    def open_form(trigger_id: str, client: WebClient, respond: Respond) -> None:
        try:
            open_submit_modal(client, trigger_id)
        except SlackApiError as exc:
            log.warning("views.open failed: %s", exc.response.get("error"))
            if respond.response_url:
                respond(text="Slack did not open the form; run `/dbquery` again.")

    def rerun_form(
        user: UserRecord, argument: str, trigger_id: str, client: WebClient, respond: Respond
    ) -> None:
        problem = open_rerun_modal(services, client, user, argument, trigger_id)
        if problem and respond.response_url:
            respond(text=problem, response_type="ephemeral")

    def text_answer(user: UserRecord, subcommand: str, argument: str) -> dict[str, Any]:
        try:
            return answer(user, subcommand, argument)
        except ANSWERABLE as exc:
            return as_message(exc, f"/dbquery {subcommand}")

    def answer_later(user: UserRecord, subcommand: str, argument: str, respond: Respond) -> None:
        respond(**text_answer(user, subcommand, argument), response_type="ephemeral")


__all__ = ["COMMAND", "parse_subcommand", "register", "status_of"]
