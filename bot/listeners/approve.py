"""Approve and Reject: the buttons (approval DMs, App Home, /dbquery pending) and the reject modal.

Deciding is one conditional write in core, so a second or concurrent click loses cleanly and
the person is told who decided. Buttons acknowledge first and decide afterwards; the reject
modal decides before acknowledging so that problems show on its reason field.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, App, BoltContext
from slack_bolt.context.respond import Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.errors import ANSWERABLE, field_errors, tell_privately
from bot.listeners.home import publish_home
from bot.middleware import portal_user
from bot.replies import reply_privately
from bot.services import Services
from bot.views.approval import APPROVE_ACTION, REJECT_ACTION
from bot.views.reject import REASON_BLOCK, REJECT_CALLBACK, reject_modal
from core.errors import InvalidSubmission
from core.records import RequestRecord, UserRecord

log = logging.getLogger("dbquery.bot.approve")


def clicked_in_home(body: dict[str, Any]) -> bool:
    return (body.get("view") or {}).get("type") == "home"


def register(app: App, services: Services) -> None:
    core = services.core

    def on_decision_button(
        action_id: str,
        decide: Callable[[str, uuid.UUID], RequestRecord],
        then: Callable[[RequestRecord, UserRecord, dict[str, Any], WebClient, Respond], None],
    ) -> None:
        """Approve and Reject buttons: acknowledge, then `decide` (a core call that raises what
        the person is told privately) and, when it passes, `then`."""

        def clicked(
            ack: Ack,
            action: dict[str, Any],
            body: dict[str, Any],
            context: BoltContext,
            client: WebClient,
            respond: Respond,
        ) -> None:
            ack()
            user, value = portal_user(context), action.get("value") or ""
            services.after_ack(action_id, follow_up, user, value, body, client, respond)

        def follow_up(
            user: UserRecord,
            request_uuid: str,
            body: dict[str, Any],
            client: WebClient,
            respond: Respond,
        ) -> None:
            try:
                request = decide(request_uuid, user.id)
            except ANSWERABLE as exc:
                tell_privately(client, respond, user, exc, action_id)
                return
            then(request, user, body, client, respond)

        app.action(action_id)(clicked)

    def refresh_home_after_approval(
        request: RequestRecord,
        user: UserRecord,
        body: dict[str, Any],
        client: WebClient,
        respond: Respond,
    ) -> None:
        if clicked_in_home(body):
            publish_home(client, services, user)

    def ask_for_reason(
        request: RequestRecord,
        user: UserRecord,
        body: dict[str, Any],
        client: WebClient,
        respond: Respond,
    ) -> None:
        trigger_id = body.get("trigger_id")
        try:
            if not trigger_id:
                raise SlackApiError("no trigger_id", {"error": "no trigger_id in the click"})
            client.views_open(trigger_id=trigger_id, view=reject_modal(request))
        except SlackApiError as exc:
            log.warning("views.open for the reject modal failed: %s", exc.response.get("error"))
            text = "Slack did not open the form for the reason; click Reject again."
            reply_privately(client, respond, user.slack_user_id or "", {"text": text})

    # Approving is the decision itself; rejecting first asks for a reason in a modal, so the
    # button only checks that the person may decide.
    on_decision_button(APPROVE_ACTION, core.requests.approve, refresh_home_after_approval)
    on_decision_button(REJECT_ACTION, core.requests.check_may_decide, ask_for_reason)

    @app.view(REJECT_CALLBACK)
    def reject_request(
        ack: Ack,
        view: dict[str, Any],
        body: dict[str, Any],
        context: BoltContext,
        client: WebClient,
    ) -> None:
        user = portal_user(context)
        try:
            core.requests.reject(view.get("private_metadata") or "", user.id, reason_of(view))
        except ANSWERABLE as exc:  # no reason, not allowed, decided meanwhile, database down
            ack(response_action="errors", errors=field_errors(exc, "rejecting", (), REASON_BLOCK))
            return
        ack()
        services.after_ack(REJECT_CALLBACK, publish_home, client, services, user)


def reason_of(view: dict[str, Any]) -> str:
    """The typed reason; InvalidSubmission when Slack's state is not shaped as the modal's."""
    state = view.get("state")
    values = state.get("values") if isinstance(state, dict) else None
    holder = values.get(REASON_BLOCK) if isinstance(values, dict) else None
    element = holder.get(REASON_BLOCK) if isinstance(holder, dict) else None
    reason = element.get("value") if isinstance(element, dict) else None
    if reason is not None and not isinstance(reason, str):
        raise InvalidSubmission(REASON_BLOCK, "dbquery could not read this field; type it again")
    if reason and "\x00" in reason:
        raise InvalidSubmission(REASON_BLOCK, "the reason holds a NUL character; remove it")
    return reason or ""


__all__ = ["clicked_in_home", "reason_of", "register"]
