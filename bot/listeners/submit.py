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
import urllib.request
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, ValidationError
from slack_bolt import Ack, App, BoltContext
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.context import (
    PORTAL_DOWN,
    PORTAL_UNAVAILABLE,
    Services,
    portal_user,
    remember_analysis,
    reply_privately,
)
from bot.views.limits import PLAIN_TEXT_INPUT_MAX, truncate
from bot.views.policy import RUN_AFTER_BLOCK
from bot.views.submit import (
    COMMENTS_BLOCK,
    QUERY_BLOCK,
    SCRIPT_BLOCK,
    SUBMIT_CALLBACK,
    TARGET_BLOCK,
    TYPE_BLOCK,
    checking_modal,
    refusal_text,
    refused_modal,
    submitted_modal,
    target_options,
)
from core.errors import DbqueryError, InvalidSubmission, NotAllowed, NotRegistered
from core.lifecycle import SubmissionType
from core.records import RequestRecord, UserRecord
from core.requests import SCRIPT_MAX_BYTES, Submission

SCRIPT_EXTENSIONS = (".sql", ".js", ".txt")
# Of Slack's 3 seconds: Bolt's own work and the HTTP round trip need the rest.
ACK_BUDGET_S = 2.0
DOWNLOAD_TIMEOUT_S = 30
ERROR_TEXT_LIMIT = 1_000
BLOCKS = (TARGET_BLOCK, TYPE_BLOCK, QUERY_BLOCK, SCRIPT_BLOCK, COMMENTS_BLOCK, RUN_AFTER_BLOCK)
UNREADABLE_FIELD = "dbquery could not read this field as Slack sent it; fill it in again"
NUL_IN_FIELD = "this holds a NUL character, which dbquery cannot store; remove it"

log = logging.getLogger("dbquery.bot.submit")


# --- the payload ------------------------------------------------------------------------------


class AttachedFile(BaseModel):
    """A file from the file_input, as Slack describes it (the content is fetched separately)."""

    model_config = ConfigDict(extra="ignore")

    id: str
    name: str = ""
    size: int | None = None
    filetype: str | None = None
    url_private_download: str | None = None
    url_private: str | None = None

    @property
    def download_url(self) -> str | None:
        return self.url_private_download or self.url_private


class SubmitForm(BaseModel):
    target: str | None = None
    submission_type: str = ""
    query: str | None = None
    files: list[AttachedFile] = []
    comments: str | None = None
    run_after_picked: Any = None  # Slack's epoch seconds, checked by check_slack_limits()
    rerun_of: str | None = None  # the request this one runs again (the modal's metadata)

    @property
    def run_after(self) -> datetime | None:
        if self.run_after_picked is None:
            return None
        if isinstance(self.run_after_picked, bool) or not isinstance(self.run_after_picked, int):
            raise InvalidSubmission(RUN_AFTER_BLOCK, "pick a date and a time")
        try:
            return datetime.fromtimestamp(self.run_after_picked, UTC)
        except (OverflowError, OSError, ValueError):
            raise InvalidSubmission(RUN_AFTER_BLOCK, "pick a date and a time") from None

    @classmethod
    def from_view(cls, view: dict[str, Any]) -> SubmitForm:
        """The form as typed; InvalidSubmission on a field whose state Slack sent in a shape
        the modal never produces (a string for an object, a number for text, a NUL byte)."""
        state = view.get("state")
        values = state.get("values") if isinstance(state, dict) else None
        values = values if isinstance(values, dict) else {}

        def element(block: str) -> dict[str, Any]:
            # Each input's action_id equals its block_id.
            holder = values.get(block)
            found = holder.get(block) if isinstance(holder, dict) else holder
            if found is None:
                return {}
            if not isinstance(found, dict):
                raise InvalidSubmission(block, UNREADABLE_FIELD)
            return found

        def text(block: str, value: Any) -> str | None:
            if value is None:
                return None
            if not isinstance(value, str):
                raise InvalidSubmission(block, UNREADABLE_FIELD)
            if "\x00" in value:
                raise InvalidSubmission(block, NUL_IN_FIELD)
            return value

        def selected(block: str) -> str | None:
            option = element(block).get("selected_option")
            if option is not None and not isinstance(option, dict):
                raise InvalidSubmission(block, UNREADABLE_FIELD)
            return text(block, (option or {}).get("value"))

        files = element(SCRIPT_BLOCK).get("files") or []
        if not isinstance(files, list) or not all(isinstance(f, dict) for f in files):
            raise InvalidSubmission(SCRIPT_BLOCK, UNREADABLE_FIELD)
        try:
            attached = [AttachedFile.model_validate(file) for file in files]
        except ValidationError:
            raise InvalidSubmission(SCRIPT_BLOCK, UNREADABLE_FIELD) from None
        if any("\x00" in file.name or "\x00" in file.id for file in attached):
            raise InvalidSubmission(SCRIPT_BLOCK, NUL_IN_FIELD)
        metadata = view.get("private_metadata")
        return cls(
            target=selected(TARGET_BLOCK),
            submission_type=selected(TYPE_BLOCK) or "",
            query=text(QUERY_BLOCK, element(QUERY_BLOCK).get("value")),
            files=attached,
            comments=text(COMMENTS_BLOCK, element(COMMENTS_BLOCK).get("value")),
            run_after_picked=element(RUN_AFTER_BLOCK).get("selected_date_time"),
            # Only a request id is ever put there; anything else is left for core to refuse.
            rerun_of=metadata if isinstance(metadata, str) and metadata else None,
        )

    @property
    def is_script(self) -> bool:
        return self.submission_type == SubmissionType.SCRIPT

    @property
    def script_name(self) -> str | None:
        """The attached script's file name when a script is submitted."""
        return self.files[0].name if self.is_script and self.files else None

    def check_slack_limits(self) -> None:
        """What Slack's own data shows at once (core checks the rest)."""
        _ = self.run_after
        if self.is_script:
            if not self.files:
                raise InvalidSubmission(SCRIPT_BLOCK, "attach a script file (.sql, .js or .txt)")
            file = self.files[0]
            if not file.name.lower().endswith(SCRIPT_EXTENSIONS):
                raise InvalidSubmission(SCRIPT_BLOCK, "attach a .sql, .js or .txt file")
            if file.size is not None and file.size > SCRIPT_MAX_BYTES:
                raise InvalidSubmission(SCRIPT_BLOCK, "the script is over 1 MB")
        elif self.query and len(self.query) > PLAIN_TEXT_INPUT_MAX:
            raise InvalidSubmission(
                QUERY_BLOCK,
                f"the query is over Slack's {PLAIN_TEXT_INPUT_MAX:,}-character limit for this"
                " field; attach it as a script file instead",
            )


# --- scripts ------------------------------------------------------------------------------------


class ScriptFetcher:
    """Reads attached scripts from Slack with the bot token."""

    def __init__(self, token: str, trusted_hosts: set[str]) -> None:
        self._token = token
        self.trusted_hosts = trusted_hosts

    def read(self, file: AttachedFile) -> str:
        """The script's text, or InvalidSubmission on the script field."""
        try:
            data = self._download(file)
        except OSError as exc:  # urllib's URLError and HTTPError included
            log.warning("downloading script %s failed: %s", file.id, type(exc).__name__)
            raise InvalidSubmission(
                SCRIPT_BLOCK, "dbquery could not download the file from Slack; try again"
            ) from None
        if len(data) > SCRIPT_MAX_BYTES:
            raise InvalidSubmission(SCRIPT_BLOCK, "the script is over 1 MB")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise InvalidSubmission(SCRIPT_BLOCK, "the script is not UTF-8 text") from None
        if "\x00" in text:
            raise InvalidSubmission(SCRIPT_BLOCK, "the script is not a text file")
        return text

    def _download(self, file: AttachedFile) -> bytes:
        url = file.download_url
        host = urlparse(url or "").hostname or ""
        # The bot token goes only to Slack (or the Web API host this process was pointed at).
        if not url or not (host.endswith(".slack.com") or host in self.trusted_hosts):
            raise InvalidSubmission(SCRIPT_BLOCK, "Slack gave no download link for the file")
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {self._token}"})
        with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_S) as response:
            if (response.headers.get("Content-Type") or "").startswith("text/html"):
                # Slack answers a sign-in page instead of the file without the files:read scope.
                raise InvalidSubmission(
                    SCRIPT_BLOCK, "dbquery may not read files (the app lacks the files:read scope)"
                )
            return response.read(SCRIPT_MAX_BYTES + 1)


def build_submission(form: SubmitForm, scripts: ScriptFetcher) -> Submission:
    """The core submission from a form that passed check_slack_limits()."""
    if form.is_script:
        file = form.files[0]
        return Submission(
            target=form.target or "",
            submission_type=form.submission_type,
            script_filename=file.name,
            script_content=scripts.read(file),
            comments=form.comments,
            run_after=form.run_after,
            rerun_of=form.rerun_of,
        )
    return Submission(
        target=form.target or "",
        submission_type=form.submission_type,
        query=form.query,
        comments=form.comments,
        run_after=form.run_after,
        rerun_of=form.rerun_of,
    )


def field_errors(block: str, message: str) -> dict[str, str]:
    return {block if block in BLOCKS else TARGET_BLOCK: truncate(message, ERROR_TEXT_LIMIT)}


def problem_block(exc: DbqueryError) -> str:
    """The block a problem belongs to: the field core named, else the target."""
    field = exc.field if isinstance(exc, InvalidSubmission) else TARGET_BLOCK
    return field if field in BLOCKS else TARGET_BLOCK


# --- the listeners ------------------------------------------------------------------------------


def register(app: App, services: Services, scripts: ScriptFetcher) -> None:
    core = services.core

    @app.options(TARGET_BLOCK)
    def load_target_options(ack: Ack, payload: dict[str, Any]) -> None:
        ack(**target_options(core.catalogue, payload.get("value") or ""))

    def check_and_store(user: UserRecord, form: SubmitForm) -> RequestRecord:
        request, analysis = core.requests.submit(user.id, build_submission(form, scripts))
        remember_analysis(request, analysis)
        return request

    def announce(request: RequestRecord) -> None:
        services.notifier.request_submitted(request, core.requests.approvers_for(request))

    @app.view(SUBMIT_CALLBACK)
    def submit_request(
        ack: Ack, view: dict[str, Any], context: BoltContext, client: WebClient
    ) -> None:
        user = portal_user(context)
        try:
            form = SubmitForm.from_view(view)
            form.check_slack_limits()
        except InvalidSubmission as exc:
            ack(response_action="errors", errors=field_errors(exc.field, exc.message))
            return
        pending = services.background.submit(check_and_store, user, form)
        try:
            request = pending.result(timeout=ACK_BUDGET_S)
        except FutureTimeout:
            ack(response_action="update", view=checking_modal(form.script_name))
            view_id = view.get("id") or ""
            pending.add_done_callback(
                lambda done: services.after_ack(
                    "a slow submission", finish_late, done, view_id, user, client
                )
            )
            return
        except (InvalidSubmission, NotAllowed, NotRegistered) as exc:
            ack(response_action="errors", errors=field_errors(problem_block(exc), exc.message))
            return
        except PORTAL_UNAVAILABLE as exc:
            log.warning(
                "storing a submission: the portal database did not answer (%s)", type(exc).__name__
            )
            ack(response_action="errors", errors=field_errors(TARGET_BLOCK, PORTAL_DOWN))
            return
        ack()
        services.after_ack(SUBMIT_CALLBACK, announce, request)

    def finish_late(
        done: Future[RequestRecord], view_id: str, user: UserRecord, client: WebClient
    ) -> None:
        try:
            request = done.result()
        except DbqueryError as exc:
            show_outcome(client, view_id, user, refused_modal(exc.message), exc.message)
            return
        except PORTAL_UNAVAILABLE as exc:
            log.warning(
                "storing a submission: the portal database did not answer (%s)", type(exc).__name__
            )
            show_outcome(client, view_id, user, refused_modal(PORTAL_DOWN), PORTAL_DOWN)
            return
        except Exception:
            log.exception("checking or storing a submission failed")
            reason = "dbquery failed to check or store it (an internal error); try again"
            show_outcome(client, view_id, user, refused_modal(reason), reason)
            return
        show_outcome(client, view_id, user, submitted_modal(request), None)
        announce(request)

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


__all__ = ["AttachedFile", "ScriptFetcher", "SubmitForm", "build_submission", "register"]
