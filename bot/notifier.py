"""Slack messages about requests: the card, approval DMs, their updates, reminders, audit.

bot.subscriber calls it for core's events; the worker calls deliver_outcome (bot.outcome_posts,
core.notify.OutcomeDelivery). Slack failures are logged (and counted by the client's error
counter) and never change a request's state; only deliver_outcome raises, so the worker keeps
the outcome queued and posts it again later.

The card and the approval DMs of one request are updated one at a time and always from the
request's current row, so a late notification never shows an older state over a newer one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from slack_sdk import WebClient

from bot.analyses import RecentAnalyses
from bot.messages import MessageRef, MessageRefs, Purpose
from bot.outcome_posts import RATE_LIMIT_PATIENCE_S, OutcomePosts
from bot.replies import SLACK_FAILURES, slack_error
from bot.views.approval import (
    approval_message,
    decided_message,
    plain_decider,
    reminder_text,
)
from bot.views.notice import notice_message
from bot.views.request_card import request_card
from core.errors import DbqueryError
from core.events import PrivateNotice
from core.lifecycle import Status
from core.records import RequestRecord, UserRecord
from core.wiring import Core

log = logging.getLogger("dbquery.notify")


def audit_line(request: RequestRecord, event: str) -> str:
    """One line per transition for the audit channel."""
    what = request.submission_type
    if request.script_filename:
        what += f" {request.script_filename}"
    return (
        f"`{request.short_id}` {event} · {request.requester.name} ({request.pod_name})"
        f" · {request.target_label} · {what}"
    )


class SlackNotifier(OutcomePosts):
    def __init__(
        self,
        client: WebClient,
        core: Core,
        analyses: RecentAnalyses | None = None,
        *,
        rate_limit_patience_s: float = RATE_LIMIT_PATIENCE_S,
    ) -> None:
        self.client = client
        self.analyses = analyses or RecentAnalyses(core.catalogue)
        self.refs = MessageRefs(core.sessions)
        self.requests = core.requests
        self.users = core.users
        self.audit_channel = core.catalogue.audit_channel
        settings = core.settings
        # Links to a request's page, when the web portal is on and has a public address.
        self.portal_url = (
            settings.public_url.rstrip("/") if settings.web and settings.public_url else None
        )
        self.rate_limit_patience_s = rate_limit_patience_s
        self._dm_channels: dict[str, str] = {}
        self._dm_lock = threading.Lock()
        # One lock per request with updates in flight (counted, so finished ones are dropped).
        self._request_locks: dict[int, tuple[threading.RLock, int]] = {}
        self._request_locks_guard = threading.Lock()

    def _page(self, request: RequestRecord) -> str | None:
        """The request's page in the web portal, linked from every message about it."""
        return f"{self.portal_url}/requests/{request.uuid}" if self.portal_url else None

    # --- Notifier ------------------------------------------------------------------------------

    def request_submitted(self, request: RequestRecord, approvers: list[UserRecord]) -> None:
        with self._request_lock(request.id):
            # The outcome may have been delivered first (a fast decision made elsewhere), and
            # posted the card itself.
            if self.refs.card(request.id) is None:
                self._attempt("post the request card", self.post_card, request)
        analysis = self.analyses.of(request)
        for approver in approvers:
            self._attempt("send an approval DM", self.post_approval, request, analysis, approver)
        self._audit(request, "submitted")

    def request_decided(self, request: RequestRecord) -> None:
        self._refresh_messages(request, approvals=True)
        who = plain_decider(request)
        if request.status == Status.REJECTED:
            self._audit(request, f"rejected {who}")
        else:
            self._audit(request, f"approved {who}")

    def step_approved(self, request: RequestRecord, second_approvers: list[UserRecord]) -> None:
        """Step 1 of 2 is approved: the DMs say by whom, the second group is asked."""
        self.request_reassessed(request, second_approvers)
        policy = self.requests.policy_state(request)
        first = next((s for s in (policy.steps if policy else ()) if s.approver_id), None)
        who = f" by {first.approver_email}" if first else ""
        self._audit(request, f"step 1 of 2 approved{who}")

    def request_reassessed(self, request: RequestRecord, new_approvers: list[UserRecord]) -> None:
        """Show what changed on a pending request (its estimate arrived, a step was approved)
        in its DMs, still with their buttons, and on its card; ask `new_approvers` too."""
        with self._request_lock(request.id):
            current = self._current(request)
            if current is None:
                return
            if current.status != Status.PENDING:
                self._show_state(current, approvals=True)
                return
            analysis = self.analyses.of(current)
            message = approval_message(
                current, analysis, self.requests.policy_state(current), self._page(current)
            )
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

    def remind(
        self, request: RequestRecord, approvers: list[UserRecord], admins: list[UserRecord]
    ) -> None:
        analysis = self.analyses.of(request)
        dms = {ref.slack_user_id: ref for ref in self.refs.approvals(request.id)}
        for approver in approvers:
            self._remind_one(request, analysis, approver, dms, escalated=False)
        for admin in admins:
            self._remind_one(request, analysis, admin, dms, escalated=True)

    def send_private_notice(self, notice: PrivateNotice) -> None:
        """A DM to the person's linked Slack account; without one, a warning (never the link)."""
        slack_id = notice.person.slack_user_id
        if not slack_id:
            log.warning(
                "private notice for %s not sent: no linked Slack account", notice.person.email
            )
            return
        self._attempt(
            "send a private notice",
            lambda: self.client.chat_postMessage(
                channel=self._dm_channel(slack_id), **notice_message(notice)
            ),
        )

    # --- the pieces ----------------------------------------------------------------------------

    def post_card(self, request: RequestRecord) -> MessageRef | None:
        """The requester's card in their DM; its reference is stored for updates and threads."""
        slack_id = self._slack_id_of(request.requester)
        if slack_id is None:
            return None
        posted = self.client.chat_postMessage(
            channel=self._dm_channel(slack_id),
            **request_card(request, self.requests.policy_state(request), self._page(request)),
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
        message = approval_message(
            request, analysis, self.requests.policy_state(request), self._page(request)
        )
        posted = self.client.chat_postMessage(channel=self._dm_channel(slack_id), **message)
        ref = MessageRef(posted["channel"], posted["ts"], slack_id)
        self.refs.save(request.id, Purpose.APPROVAL, ref.channel_id, ref.ts, slack_id)
        return ref

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
            message = decided_message(
                current, self.analyses.of(current), policy, self._page(current)
            )
            for ref in self.refs.approvals(current.id):
                self._attempt("update an approval DM", self._update, ref, message)
        card = card or self.refs.card(current.id)
        if card is not None:
            self._attempt(
                "update the request card",
                self._update,
                card,
                request_card(current, policy, self._page(current)),
            )

    @contextmanager
    def _request_lock(self, request_id: int) -> Iterator[None]:
        with self._request_locks_guard:
            lock, users = self._request_locks.get(request_id, (threading.RLock(), 0))
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


__all__ = ["SlackNotifier", "audit_line"]
