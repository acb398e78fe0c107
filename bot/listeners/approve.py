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

from bot.context import Services, portal_user, reply_privately
from bot.listeners.home import publish_home
from bot.views.approval import APPROVE_ACTION, REJECT_ACTION
from bot.views.reject import REASON_BLOCK, REJECT_CALLBACK, reject_modal
from core.errors import DbqueryError
from core.lifecycle import Status
from core.records import RequestRecord, UserRecord

log = logging.getLogger("dbquery.bot.approve")


def clicked_in_home(body: dict[str, Any]) -> bool:
    return (body.get("view") or {}).get("type") == "home"


def register(app: App, services: Services) -> None:
    core = services.core

    def on_decision_button(
        action_id: str,
        decide: Callable[[str, uuid.UUID], RequestRecord],
        then: Callable[[RequestRecord, UserRecord, dict[str, Any], WebClient], None],
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
            except DbqueryError as exc:
                reply_privately(client, respond, user.slack_user_id or "", {"text": exc.message})
                return
            then(request, user, body, client)

        app.action(action_id)(clicked)

    def announce_approval(
        request: RequestRecord, user: UserRecord, body: dict[str, Any], client: WebClient
    ) -> None:
        if request.status == Status.PENDING:
            # Step 1 of 2: core's STEP_APPROVED event updates the DMs and asks for step 2.
            return
        services.worker.wake()
        services.notifier.request_decided(request)
        if clicked_in_home(body):
            publish_home(client, services, user)

    def ask_for_reason(
        request: RequestRecord, user: UserRecord, body: dict[str, Any], client: WebClient
    ) -> None:
        try:
            client.views_open(trigger_id=body["trigger_id"], view=reject_modal(request))
        except SlackApiError as exc:
            log.warning("views.open for the reject modal failed: %s", exc.response.get("error"))

    # Approving is the decision itself; rejecting first asks for a reason in a modal, so the
    # button only checks that the person may decide.
    on_decision_button(APPROVE_ACTION, core.requests.approve, announce_approval)
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
            request = core.requests.reject(
                view.get("private_metadata") or "", user.id, reason_of(view)
            )
        except DbqueryError as exc:  # InvalidSubmission (no reason), NotAllowed, raced
            ack(response_action="errors", errors={REASON_BLOCK: exc.message})
            return
        ack()
        services.after_ack(REJECT_CALLBACK, announce_rejection, request, user, client)

    def announce_rejection(request: RequestRecord, user: UserRecord, client: WebClient) -> None:
        services.notifier.request_decided(request)
        services.worker.deliver_outcome_now(request.id)
        publish_home(client, services, user)


def reason_of(view: dict[str, Any]) -> str:
    values = (view.get("state") or {}).get("values") or {}
    return ((values.get(REASON_BLOCK) or {}).get(REASON_BLOCK) or {}).get("value") or ""


__all__ = ["clicked_in_home", "reason_of", "register"]
