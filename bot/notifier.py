"""core.notify.Notifier over the Slack Web API: cards, approval DMs, threaded outcomes, audit.

Slack failures are logged (and counted by the client's error counter) and never change a
request's state. Only deliver_outcome raises, so the worker keeps the outcome queued and
posts it again later; before it gives up, it waits out Slack's rate limits for as long as
Slack asks, so an outcome lands as soon as Slack accepts calls again.

The card and the approval DMs of one request are updated one at a time and always from the
request's current row, so a late notification never shows an older state over a newer one.
"""

from __future__ import annotations

import itertools
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.context import analysis_of
from bot.file_upload import stream_file
from bot.views.approval import (
    approval_message,
    decided_message,
    plain_decider,
    reminder_text,
)
from bot.views.request_card import request_card
from bot.views.results import needs_file, outcome_message, result_file_name
from core.errors import DbqueryError
from core.jobs import DELIVERY_LEASE
from core.lifecycle import Status
from core.messages import MessageRef, MessageRefs, Purpose
from core.records import RequestRecord, UserRecord
from core.wiring import Core

log = logging.getLogger("dbquery.notify")

SLACK_FAILURES = (SlackApiError, SlackClientError, OSError)
# A delivery waits out rate limits only while its claim on the outcome holds (the worker's
# delivery lease), with a margin, so no other attempt can start and post it a second time.
RATE_LIMIT_PATIENCE_S = DELIVERY_LEASE.total_seconds() * 2 / 3
# Waits when a 429 carries no Retry-After (Slack always sends one; a proxy may not).
RATE_LIMIT_BACKOFF_S = (1.0, 2.0, 4.0, 8.0)
UPLOAD_TIMEOUT_S = 120  # between two chunks on the socket, not for the whole file


def retry_after_s(exc: SlackApiError) -> float | None:
    """The wait a 429 asks for (Retry-After, in seconds), or None when it names none."""
    headers = getattr(exc.response, "headers", None) or {}
    for key, value in headers.items():
        if key.lower() == "retry-after":
            raw = value[0] if isinstance(value, list) else value
            try:
                return max(0.0, float(raw))
            except (TypeError, ValueError):
                return None
    return None


def is_rate_limited(exc: Exception) -> bool:
    return isinstance(exc, SlackApiError) and getattr(exc.response, "status_code", None) == 429


def slack_error(exc: Exception) -> str:
    """The Slack error code (e.g. 'channel_not_found'), never a token or a payload."""
    if isinstance(exc, SlackApiError):
        return str(exc.response.get("error") or "error")
    return type(exc).__name__


def audit_line(request: RequestRecord, event: str) -> str:
    """One line per transition for the audit channel."""
    what = request.submission_type
    if request.script_filename:
        what += f" {request.script_filename}"
    return (
        f"`{request.short_id}` {event} · {request.requester.name} ({request.pod_name})"
        f" · {request.target_label} · {what}"
    )


class SlackNotifier:
    def __init__(
        self,
        client: WebClient,
        core: Core,
        *,
        rate_limit_patience_s: float = RATE_LIMIT_PATIENCE_S,
    ) -> None:
        self.client = client
        self.refs = MessageRefs(core.sessions)
        self.requests = core.requests
        self.users = core.users
        self.audit_channel = core.catalogue.audit_channel
        self.rate_limit_patience_s = rate_limit_patience_s
        self._dm_channels: dict[str, str] = {}
        self._dm_lock = threading.Lock()
        # One lock per request with updates in flight (counted, so finished ones are dropped).
        self._request_locks: dict[int, tuple[threading.Lock, int]] = {}
        self._request_locks_guard = threading.Lock()

    # --- Notifier ------------------------------------------------------------------------------

    def request_submitted(self, request: RequestRecord, approvers: list[UserRecord]) -> None:
        with self._request_lock(request.id):
            current = self._current(request) or request
            if self.refs.card(current.id) is None:
                self._attempt("post the request card", self.post_card, current)
            if current.status != Status.PENDING:
                return  # approved by policy meanwhile: nobody is asked, its audit line is out
            analysis = analysis_of(current)
            for approver in approvers:
                self._attempt(
                    "send an approval DM", self.post_approval, current, analysis, approver
                )
        self._audit(current, "submitted")

    def request_decided(self, request: RequestRecord) -> None:
        self._refresh_messages(request, approvals=True)
        who = plain_decider(request)
        if request.status == Status.REJECTED:
            self._audit(request, f"rejected {who}")
        else:
            self._audit(request, f"approved {who}")

    def approved_by_policy(self, request: RequestRecord) -> None:
        """A policy approved it (at submit, or when its estimate arrived): card, DMs, audit."""
        with self._request_lock(request.id):
            if self.refs.card(request.id) is None:
                self._attempt("post the request card", self.post_card, request)
        self.request_decided(request)

    def step_approved(self, request: RequestRecord, second_approvers: list[UserRecord]) -> None:
        self.request_reassessed(request, list(second_approvers))
        policy = self.requests.policy_state(request)
        first = next((s for s in (policy.steps if policy else ()) if s.approver_id), None)
        who = f" by {first.approver_email}" if first else ""
        self._audit(request, f"step 1 of 2 approved{who}")

    def request_reassessed(self, request: RequestRecord, new_approvers: list[UserRecord]) -> None:
        """The estimate arrived, or step 1 of 2 was approved: show it, ask step 2's people."""
        with self._request_lock(request.id):
            current = self._current(request)
            if current is None:
                return
            if current.status != Status.PENDING:
                self._show_state(current, approvals=True)
                return
            analysis = analysis_of(current)
            message = approval_message(current, analysis, self.requests.policy_state(current))
            asked = set()
            for ref in self.refs.approvals(current.id):
                asked.add(ref.slack_user_id)
                self._attempt("update an approval DM", self._update, ref, message)
            for person in new_approvers:
                if person.slack_user_id and person.slack_user_id in asked:
                    continue
                self._attempt("send an approval DM", self.post_approval, current, analysis, person)
            self._show_state(current, approvals=False)

    def execution_started(self, request: RequestRecord) -> None:
        self._refresh_messages(request)
        self._audit(request, "executing")

    def deliver_outcome(self, request: RequestRecord, result_file: Path | None) -> None:
        card = self.refs.card(request.id) or self._patiently(self.post_card, request)
        if card is None:
            log.warning(
                "request %s: the requester is not on Slack; outcome not posted", request.uuid
            )
            return
        self._refresh_messages(request, card=card)
        attach = result_file is not None and result_file.is_file() and needs_file(request)
        self.post_outcome_thread(request, card, result_file if attach else None)
        if request.status in (Status.COMPLETED, Status.FAILED):
            self._audit(request, str(request.status))

    def remind(
        self, request: RequestRecord, approvers: list[UserRecord], admins: list[UserRecord]
    ) -> None:
        analysis = analysis_of(request)
        dms = {ref.slack_user_id: ref for ref in self.refs.approvals(request.id)}
        for approver in approvers:
            self._remind_one(request, analysis, approver, dms, escalated=False)
        for admin in admins:
            self._remind_one(request, analysis, admin, dms, escalated=True)

    # --- the pieces ----------------------------------------------------------------------------

    def post_card(self, request: RequestRecord) -> MessageRef | None:
        """The requester's card in their DM; its reference is stored for updates and threads."""
        slack_id = self._slack_id_of(request.requester)
        if slack_id is None:
            return None
        posted = self.client.chat_postMessage(
            channel=self._dm_channel(slack_id),
            **request_card(request, self.requests.policy_state(request)),
        )
        ref = MessageRef(posted["channel"], posted["ts"], slack_id)
        self.refs.save(request.id, Purpose.CARD, ref.channel_id, ref.ts, slack_id)
        return ref

    def post_approval(
        self, request: RequestRecord, analysis: Any, approver: UserRecord
    ) -> MessageRef | None:
        slack_id = self._slack_id_of(approver)
        if slack_id is None:
            log.warning("approver %s is not on Slack; no approval DM", approver.email)
            return None
        message = approval_message(request, analysis, self.requests.policy_state(request))
        posted = self.client.chat_postMessage(channel=self._dm_channel(slack_id), **message)
        ref = MessageRef(posted["channel"], posted["ts"], slack_id)
        self.refs.save(request.id, Purpose.APPROVAL, ref.channel_id, ref.ts, slack_id)
        return ref

    def post_outcome_thread(
        self, request: RequestRecord, card: MessageRef, result_file: Path | None
    ) -> None:
        """The outcome as a reply under the card; a large result follows as a file in the thread.

        Each piece is posted once: when the file upload fails after the reply went out, the
        retry finds the reply recorded and uploads only the file.
        """
        if self.refs.outcome_reply(request.id) is None:
            message = outcome_message(request, file_attached=result_file is not None)
            posted = self._patiently(
                self.client.chat_postMessage, channel=card.channel_id, thread_ts=card.ts, **message
            )
            self.refs.save_outcome_reply(request.id, posted["ts"])
        if result_file is None:
            return
        self.upload_into_thread(request, card, result_file)

    def upload_into_thread(self, request: RequestRecord, card: MessageRef, path: Path) -> None:
        """Slack's external upload: ask for an upload URL, stream the file, then share it.

        The file goes from disk to the socket in chunks, so memory stays flat whatever its size.
        """
        length = path.stat().st_size
        filename = result_file_name(request, path.suffixes)
        target = self._patiently(
            self.client.files_getUploadURLExternal, filename=filename, length=length
        )
        stream_file(
            target["upload_url"], path, timeout=UPLOAD_TIMEOUT_S, ssl_context=self.client.ssl
        )
        self._patiently(
            self.client.files_completeUploadExternal,
            files=[
                {
                    "id": target["file_id"],
                    "title": f"Result of {request.short_id} · {request.target_label}",
                }
            ],
            channel_id=card.channel_id,
            thread_ts=card.ts,
        )

    def _remind_one(
        self,
        request: RequestRecord,
        analysis: Any,
        person: UserRecord,
        dms: dict[str | None, MessageRef],
        *,
        escalated: bool,
    ) -> None:
        """A reminder in the thread of the person's approval DM (sent now if they have none)."""
        ref = dms.get(person.slack_user_id) if person.slack_user_id else None
        if ref is None:
            ref = self._attempt(
                "send an approval DM", self.post_approval, request, analysis, person
            )
            if ref is None:
                return
            dms[ref.slack_user_id] = ref
        text = reminder_text(request, escalated)
        self._attempt(
            "post a reminder",
            self.client.chat_postMessage,
            channel=ref.channel_id,
            thread_ts=ref.ts,
            text=text,
        )

    def _refresh_messages(
        self, request: RequestRecord, *, approvals: bool = False, card: MessageRef | None = None
    ) -> None:
        """Show the request's current state on its card (and approval DMs).

        Notifications about one request arrive from several threads (the approval click, the
        worker starting it, the worker finishing it) in any order: under the request's lock,
        the state shown is read afresh, so whichever update runs last shows the latest state.
        """
        with self._request_lock(request.id):
            current = self._current(request)
            if current is not None:
                self._show_state(current, approvals=approvals, card=card)

    def _current(self, request: RequestRecord) -> RequestRecord | None:
        try:
            return self.requests.get(request.uuid)
        except DbqueryError as exc:
            log.warning("request %s: cannot read it to update its messages: %s", request.uuid, exc)
            return None

    def _show_state(
        self, current: RequestRecord, *, approvals: bool, card: MessageRef | None = None
    ) -> None:
        """Render the card (and the approval DMs) from `current`; call under the request's lock."""
        policy = self.requests.policy_state(current)
        if approvals:
            message = decided_message(current, analysis_of(current), policy)
            for ref in self.refs.approvals(current.id):
                self._attempt("update an approval DM", self._update, ref, message)
        card = card or self.refs.card(current.id)
        if card is not None:
            self._attempt(
                "update the request card", self._update, card, request_card(current, policy)
            )

    @contextmanager
    def _request_lock(self, request_id: int) -> Iterator[None]:
        with self._request_locks_guard:
            lock, users = self._request_locks.get(request_id, (threading.Lock(), 0))
            self._request_locks[request_id] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._request_locks_guard:
                lock, users = self._request_locks[request_id]
                if users == 1:
                    del self._request_locks[request_id]
                else:
                    self._request_locks[request_id] = (lock, users - 1)

    def _patiently(self, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """`call`, repeated while Slack answers 429, after the wait Slack asks for each time.

        Gives up (raising the 429) when the next wait would pass the patience budget; the
        worker's redelivery takes over from there. A 429 means Slack did nothing, so calling
        again cannot post twice.
        """
        deadline = time.monotonic() + self.rate_limit_patience_s
        for attempt in itertools.count():
            try:
                return call(*args, **kwargs)
            except SlackApiError as exc:
                if not is_rate_limited(exc):
                    raise
                asked = retry_after_s(exc)
                wait = (
                    asked
                    if asked is not None
                    else RATE_LIMIT_BACKOFF_S[min(attempt, len(RATE_LIMIT_BACKOFF_S) - 1)]
                )
                # A little jitter, so replicas waiting on one limit do not all call at once.
                wait += random.uniform(0, 0.2)
                if time.monotonic() + wait > deadline:
                    raise
                log.info("Slack rate limit on %s; calling again in %.1f s", _name(call), wait)
                time.sleep(wait)
        raise AssertionError("itertools.count() never ends")

    def _update(self, ref: MessageRef, message: dict[str, Any]) -> None:
        self.client.chat_update(channel=ref.channel_id, ts=ref.ts, **message)

    def _audit(self, request: RequestRecord, event: str) -> None:
        if self.audit_channel:
            self._attempt(
                "post to the audit channel",
                self.client.chat_postMessage,
                channel=self.audit_channel,
                text=audit_line(request, event),
            )

    def _slack_id_of(self, user: UserRecord) -> str | None:
        """The person's Slack id; people added without one are found by email and linked."""
        if user.slack_user_id:
            return user.slack_user_id
        try:
            found = self.client.users_lookupByEmail(email=user.email)["user"]["id"]
        except SLACK_FAILURES as exc:
            log.info("no Slack user for %s (%s)", user.email, slack_error(exc))
            return None
        try:
            self.users.link_slack(user.email, found)
        except DbqueryError as exc:
            log.warning("cannot link %s to Slack user %s: %s", user.email, found, exc)
            return None
        return found

    def _dm_channel(self, slack_user_id: str) -> str:
        with self._dm_lock:
            channel = self._dm_channels.get(slack_user_id)
        if channel is None:
            channel = self.client.conversations_open(users=slack_user_id)["channel"]["id"]
            with self._dm_lock:
                self._dm_channels[slack_user_id] = channel
        return channel

    @staticmethod
    def _attempt(what: str, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return call(*args, **kwargs)
        except SLACK_FAILURES as exc:
            log.warning("could not %s: %s", what, slack_error(exc))
            return None


def _name(call: Callable[..., Any]) -> str:
    return getattr(call, "__name__", "a Slack call")


__all__ = ["SlackNotifier", "audit_line", "is_rate_limited", "retry_after_s", "slack_error"]
