"""The submit modal: its options listener and its submission.

Every validation failure is answered in the acknowledgement as `response_action: errors` on
the block at fault, so the person fixes it in place and nothing is written. That means the
script has to be read before the acknowledgement, and it is, under a strict budget:

* the checks Slack's file metadata allows (extension, size) come first and cost nothing;
* the download (bot token, files:read) gets SCRIPT_BUDGET_S of the 3 seconds Slack allows;
* a download that overruns keeps going in the background, and the person is asked, on the
  script field, to press Submit again; the second press picks up the finished download.

A script of up to 1 MB normally arrives in well under a second, so people see parse errors
on the script field exactly as they see them for a pasted query. The alternative, closing the
modal and checking the script afterwards, would have to report errors in a DM and make the
person start over.
"""

from __future__ import annotations

import logging
import threading
import time
import urllib.request
from concurrent.futures import Executor, Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict
from slack_bolt import Ack, App, BoltContext

from bot.context import Services, after_ack, portal_user
from bot.views.limits import PLAIN_TEXT_INPUT_MAX, truncate
from bot.views.submit import (
    COMMENTS_BLOCK,
    QUERY_BLOCK,
    SCRIPT_BLOCK,
    SUBMIT_CALLBACK,
    TARGET_BLOCK,
    TYPE_BLOCK,
    target_options,
)
from core.errors import InvalidSubmission, NotAllowed, NotRegistered
from core.lifecycle import SubmissionType
from core.requests import SCRIPT_MAX_BYTES, Submission

SCRIPT_EXTENSIONS = (".sql", ".js", ".txt")
SCRIPT_BUDGET_S = (
    1.5  # of Slack's 3 s: parsing, the portal write and the HTTP round trip share the rest
)
DOWNLOAD_TIMEOUT_S = 30
FORGET_DOWNLOADS_AFTER_S = 600
ERROR_TEXT_LIMIT = 1_000
BLOCKS = (TARGET_BLOCK, TYPE_BLOCK, QUERY_BLOCK, SCRIPT_BLOCK, COMMENTS_BLOCK)

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

    @classmethod
    def from_view(cls, view: dict[str, Any]) -> SubmitForm:
        values = (view.get("state") or {}).get("values") or {}

        def element(block: str) -> dict[str, Any]:
            # Each input's action_id equals its block_id.
            return (values.get(block) or {}).get(block) or {}

        def selected(block: str) -> str | None:
            option = element(block).get("selected_option") or {}
            return option.get("value")

        return cls(
            target=selected(TARGET_BLOCK),
            submission_type=selected(TYPE_BLOCK) or "",
            query=element(QUERY_BLOCK).get("value"),
            files=element(SCRIPT_BLOCK).get("files") or [],
            comments=element(COMMENTS_BLOCK).get("value"),
        )


# --- scripts ------------------------------------------------------------------------------------


class ScriptFetcher:
    """Reads attached scripts from Slack with the bot token, within the acknowledgement budget."""

    def __init__(
        self,
        token: str,
        executor: Executor,
        trusted_hosts: set[str],
        budget_s: float = SCRIPT_BUDGET_S,
    ) -> None:
        self._token = token
        self.executor = executor
        self.trusted_hosts = trusted_hosts
        self.budget_s = budget_s
        self._downloads: dict[str, tuple[float, Future[bytes]]] = {}
        self._lock = threading.Lock()

    def read(self, file: AttachedFile) -> str:
        """The script's text, or InvalidSubmission on the script field."""
        self._check_metadata(file)
        data = self._wait_for(file)
        if len(data) > SCRIPT_MAX_BYTES:
            raise InvalidSubmission(SCRIPT_BLOCK, "the script is over 1 MB")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise InvalidSubmission(SCRIPT_BLOCK, "the script is not UTF-8 text") from None
        if "\x00" in text:
            raise InvalidSubmission(SCRIPT_BLOCK, "the script is not a text file")
        return text

    @staticmethod
    def _check_metadata(file: AttachedFile) -> None:
        if not file.name.lower().endswith(SCRIPT_EXTENSIONS):
            raise InvalidSubmission(SCRIPT_BLOCK, "attach a .sql, .js or .txt file")
        if file.size is not None and file.size > SCRIPT_MAX_BYTES:
            raise InvalidSubmission(SCRIPT_BLOCK, "the script is over 1 MB")

    def _wait_for(self, file: AttachedFile) -> bytes:
        future = self._start(file)
        try:
            data = future.result(timeout=self.budget_s)
        except FutureTimeout:
            raise InvalidSubmission(
                SCRIPT_BLOCK,
                "Slack is slow to hand over the file; press Submit again in a moment.",
            ) from None
        except InvalidSubmission:
            self._forget(file.id)
            raise
        except Exception as exc:
            self._forget(file.id)
            log.warning("downloading script %s failed: %s", file.id, type(exc).__name__)
            raise InvalidSubmission(
                SCRIPT_BLOCK, "dbquery could not download the file from Slack; try again"
            ) from None
        self._forget(file.id)
        return data

    def _start(self, file: AttachedFile) -> Future[bytes]:
        now = time.monotonic()
        with self._lock:
            for key, (started, _) in list(self._downloads.items()):
                if now - started > FORGET_DOWNLOADS_AFTER_S:
                    del self._downloads[key]
            if file.id not in self._downloads:
                future = self.executor.submit(self._download, file)
                self._downloads[file.id] = (now, future)
            return self._downloads[file.id][1]

    def _forget(self, file_id: str) -> None:
        with self._lock:
            self._downloads.pop(file_id, None)

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


# --- the listeners ------------------------------------------------------------------------------


def build_submission(form: SubmitForm, scripts: ScriptFetcher) -> Submission:
    """The core submission from the form; checks only Slack-side limits, core checks the rest."""
    if form.submission_type == SubmissionType.SCRIPT:
        if not form.files:
            raise InvalidSubmission(SCRIPT_BLOCK, "attach a script file (.sql, .js or .txt)")
        file = form.files[0]
        return Submission(
            target=form.target or "",
            submission_type=form.submission_type,
            script_filename=file.name,
            script_content=scripts.read(file),
            comments=form.comments,
        )
    if form.query and len(form.query) > PLAIN_TEXT_INPUT_MAX:
        raise InvalidSubmission(
            QUERY_BLOCK,
            f"the query is over Slack's {PLAIN_TEXT_INPUT_MAX:,}-character limit for this"
            " field; attach it as a script file instead",
        )
    return Submission(
        target=form.target or "",
        submission_type=form.submission_type,
        query=form.query,
        comments=form.comments,
    )


def field_errors(block: str, message: str) -> dict[str, str]:
    return {block if block in BLOCKS else TARGET_BLOCK: truncate(message, ERROR_TEXT_LIMIT)}


def register(app: App, services: Services, scripts: ScriptFetcher) -> None:
    core = services.core

    @app.options(TARGET_BLOCK)
    def load_target_options(ack: Ack, payload: dict[str, Any]) -> None:
        ack(**target_options(core.catalogue, payload.get("value") or ""))

    @app.view(SUBMIT_CALLBACK)
    def submit_request(ack: Ack, view: dict[str, Any], context: BoltContext) -> None:
        user = portal_user(context)
        try:
            submission = build_submission(SubmitForm.from_view(view), scripts)
            request, _analysis = core.requests.submit(user.id, submission)
        except InvalidSubmission as exc:
            ack(response_action="errors", errors=field_errors(exc.field, exc.message))
            return
        except (NotAllowed, NotRegistered) as exc:
            ack(response_action="errors", errors=field_errors(TARGET_BLOCK, exc.message))
            return
        ack()
        with after_ack(SUBMIT_CALLBACK):
            services.notifier.request_submitted(request, core.requests.approvers_for(request))


__all__ = ["AttachedFile", "ScriptFetcher", "SubmitForm", "build_submission", "register"]
