"""The submit modal: its options listener and its submission.

A submission is checked and stored before Slack is answered, because that is the only moment
problems can be shown on the field at fault (`response_action: errors`): an empty query, a
syntax error, an unknown target, a script that is too large or not UTF-8. Nothing is written
when anything is wrong.

Checking is usually instant, but a script has to be downloaded from Slack first (bot token,
files:read), and PostgreSQL's parser takes seconds over a 1 MB script of thousands of
statements. Slack allows 3 seconds, so the check runs in the background with ACK_BUDGET_S to
finish:

* in time (nearly always): the modal closes, or shows the errors on their fields;
* too slow: the modal turns into "Checking your script…" (`response_action: update`), and
  when the check ends it is updated to say that the request was stored, or why it was not
  (in a DM instead if the person closed the modal meanwhile). Nothing is stored on failure.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from slack_bolt import Ack, App, BoltContext
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.errors import ANSWERABLE, explain, field_errors
from bot.middleware import portal_user
from bot.replies import reply_privately
from bot.services import Services
from bot.submit_form import BLOCKS, ScriptFetcher, SubmitForm, build_submission
from bot.views.submit import (
    SUBMIT_CALLBACK,
    TARGET_BLOCK,
    checking_modal,
    refusal_text,
    refused_modal,
    submitted_modal,
    target_options,
)
from core.errors import InvalidSubmission
from core.records import RequestRecord, UserRecord

# Of Slack's 3 seconds: Bolt's own work and the HTTP round trip need the rest.
ACK_BUDGET_S = 2.0

log = logging.getLogger("dbquery.bot.submit")


def form_errors(exc: Exception) -> dict[str, str]:
    """The problem under its field; problems with the request as a whole go on the target."""
    return field_errors(exc, "storing a submission", BLOCKS, TARGET_BLOCK)


# --- the listeners ------------------------------------------------------------------------------


def register(app: App, services: Services, scripts: ScriptFetcher) -> None:
    core = services.core

    @app.options(TARGET_BLOCK)
    def load_target_options(ack: Ack, payload: dict[str, Any]) -> None:
        ack(**target_options(core.catalogue, payload.get("value") or ""))

    def check_and_store(user: UserRecord, form: SubmitForm) -> RequestRecord:
        request, analysis = core.requests.submit(user.id, build_submission(form, scripts))
        services.analyses.remember(request, analysis)
        return request

    @app.view(SUBMIT_CALLBACK)
    def submit_request(
        ack: Ack, view: dict[str, Any], context: BoltContext, client: WebClient
    ) -> None:
        user = portal_user(context)
        try:
            form = SubmitForm.from_view(view)
            form.check_slack_limits()
        except InvalidSubmission as exc:
            ack(response_action="errors", errors=form_errors(exc))
            return
        pending = services.background.submit(check_and_store, user, form)
        try:
            pending.result(timeout=ACK_BUDGET_S)
        except FutureTimeout:
            ack(response_action="update", view=checking_modal(form.script_name))
            view_id = view.get("id") or ""
            pending.add_done_callback(
                lambda done: services.after_ack(
                    "a slow submission", finish_late, done, view_id, user, client
                )
            )
            return
        except ANSWERABLE as exc:
            ack(response_action="errors", errors=form_errors(exc))
            return
        ack()

    def finish_late(
        done: Future[RequestRecord], view_id: str, user: UserRecord, client: WebClient
    ) -> None:
        try:
            request = done.result()
        except ANSWERABLE as exc:
            problem = explain(exc, "storing a submission")
            show_outcome(client, view_id, user, refused_modal(problem), problem)
            return
        except Exception:
            log.exception("checking or storing a submission failed")
            reason = "dbquery failed to check or store it (an internal error); try again"
            show_outcome(client, view_id, user, refused_modal(reason), reason)
            return
        show_outcome(client, view_id, user, submitted_modal(request), None)

    def show_outcome(
        client: WebClient,
        view_id: str,
        user: UserRecord,
        modal: dict[str, Any],
        problem: str | None,
    ) -> None:
        try:
            client.views_update(view_id=view_id, view=modal)
        except SlackApiError as exc:
            # Most likely the person closed the modal; a problem must still reach them.
            log.info("views.update after a slow check failed: %s", exc.response.get("error"))
            if problem is not None and user.slack_user_id:
                reply_privately(client, None, user.slack_user_id, {"text": refusal_text(problem)})


__all__ = ["register"]
