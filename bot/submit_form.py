"""The submit modal as Slack sends it: its fields read and typed, the attached script fetched.

Everything here raises InvalidSubmission naming the field at fault, so the listener
(bot.listeners.submit) can show it there; core checks the content itself.
"""

from __future__ import annotations

import logging
import urllib.request
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, ValidationError

from bot.views.limits import PLAIN_TEXT_INPUT_MAX
from bot.views.policy import RUN_AFTER_BLOCK
from bot.views.submit import (
    COMMENTS_BLOCK,
    QUERY_BLOCK,
    SCRIPT_BLOCK,
    TARGET_BLOCK,
    TYPE_BLOCK,
)
from core.errors import InvalidSubmission
from core.lifecycle import SubmissionType
from core.requests import SCRIPT_MAX_BYTES, SCRIPT_TOO_LARGE, Submission

SCRIPT_EXTENSIONS = (".sql", ".js", ".txt")
DOWNLOAD_TIMEOUT_S = 30
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
            rerun_of=text(TARGET_BLOCK, metadata)
            if isinstance(metadata, str) and metadata
            else None,
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
                raise InvalidSubmission(SCRIPT_BLOCK, SCRIPT_TOO_LARGE)
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
            raise InvalidSubmission(SCRIPT_BLOCK, SCRIPT_TOO_LARGE)
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


__all__ = ["BLOCKS", "AttachedFile", "ScriptFetcher", "SubmitForm", "build_submission"]
