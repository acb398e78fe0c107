"""Who is asking: the Slack user behind a payload, resolved to the active portal user.

The middleware runs before every listener and stores the person in the Bolt context under
PORTAL_USER. Unknown or deactivated people get an answer saying so (how depends on the kind of
payload), and no listener runs for them.

A person seen for the first time is found by the email Slack has for them (users.info) and
linked, within LOOKUP_BUDGET_S so the acknowledgement still goes out in time; if Slack is
slower, the person is asked to try again (the look-up goes on and links them meanwhile).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from slack_bolt import Ack, BoltContext, BoltResponse
from slack_bolt.context.respond import Respond
from slack_sdk import WebClient

from bot.errors import PORTAL_DOWN, first_input_block
from bot.replies import SLACK_FAILURES, reply_privately, slack_error
from bot.services import Services
from bot.views.commands import not_registered_message
from core.errors import NotRegistered
from core.jobs import PORTAL_UNAVAILABLE
from core.records import UserRecord
from core.users import NOT_REGISTERED

PORTAL_USER = "portal_user"
USER_CACHE_TTL_S = 30
LOOKUP_BUDGET_S = 1.5  # of Slack's 3 s for the acknowledgement
ADMINS_NAMED = 3
SLACK_DID_NOT_SAY = "Slack did not tell dbquery who you are just now; try again."

log = logging.getLogger("dbquery.bot")


def portal_user(context: BoltContext) -> UserRecord:
    """The active portal user behind this request (set by the middleware)."""
    return context[PORTAL_USER]


class RecentUsers:
    """Active portal users resolved in the last `ttl_s` seconds, by Slack id.

    Every Slack request needs to know who is asking before it is acknowledged; remembering the
    answer briefly keeps the portal database out of the acknowledgement path for people who
    are clicking around. Only what listeners show is affected by a stale entry: submitting and
    deciding re-read the person in the same transaction, so a deactivated person can do
    neither, even while still remembered here.
    """

    def __init__(
        self,
        ttl_s: float = USER_CACHE_TTL_S,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = 10_000,
    ) -> None:
        self.ttl_s = ttl_s
        self.clock = clock
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, UserRecord]] = {}
        self._lock = threading.Lock()

    def get(self, slack_user_id: str) -> UserRecord | None:
        with self._lock:
            entry = self._entries.get(slack_user_id)
            if entry is None:
                return None
            if self.clock() - entry[0] >= self.ttl_s:
                del self._entries[slack_user_id]
                return None
            return entry[1]

    def remember(self, slack_user_id: str, user: UserRecord) -> None:
        now = self.clock()
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries = {
                    key: entry
                    for key, entry in self._entries.items()
                    if now - entry[0] < self.ttl_s
                }
            if len(self._entries) < self.max_entries:
                self._entries[slack_user_id] = (now, user)


def slack_email_lookup(client: WebClient) -> Callable[[str], str | None]:
    def email_of(slack_user_id: str) -> str | None:
        profile = client.users_info(user=slack_user_id)["user"].get("profile") or {}
        return profile.get("email")

    return email_of


class Refusal(Exception):
    """Why the person may not go on, and whether the answer must wait for the acknowledgement
    (a first contact's answer goes through response_url, as the look-up was not instant)."""

    def __init__(self, text: str, *, after_ack: bool = False) -> None:
        super().__init__(text)
        self.text = text
        self.after_ack = after_ack


def make_portal_user_middleware(
    services: Services, recent: RecentUsers | None = None
) -> Callable[..., BoltResponse | None]:
    users = services.core.users
    recent = recent or RecentUsers()

    def resolve_portal_user(
        context: BoltContext,
        body: dict[str, Any],
        ack: Ack,
        next: Callable[[], None],
        client: WebClient,
        respond: Respond,
    ) -> BoltResponse | None:
        slack_user_id = context.user_id
        if not slack_user_id:  # url_verification, ssl_check: nobody to resolve
            return next()
        user = recent.get(slack_user_id)
        if user is None:
            try:
                user = who_is(slack_user_id, body, client)
            except Refusal as refusal:
                return refuse(body, ack, client, respond, slack_user_id, refusal)
            recent.remember(slack_user_id, user)
        context[PORTAL_USER] = user
        return next()

    def who_is(slack_user_id: str, body: dict[str, Any], client: WebClient) -> UserRecord:
        try:
            user = users.by_slack_id(slack_user_id)
            first_contact = user is None
            if first_contact:
                if body.get("type") in ("view_submission", "block_suggestion"):
                    # Only linked people are shown modals: nobody to look up here.
                    raise Refusal(whom_to_ask(NOT_REGISTERED))
                user = users.link_by_email(slack_user_id, email_of(slack_user_id, client))
            return users.active(user)
        except NotRegistered as exc:
            raise Refusal(whom_to_ask(exc.message), after_ack=first_contact) from None
        except PORTAL_UNAVAILABLE as exc:
            log.warning(
                "cannot look up %s: the portal database did not answer (%s)",
                slack_user_id,
                type(exc).__name__,
            )
            raise Refusal(PORTAL_DOWN) from None

    def email_of(slack_user_id: str, client: WebClient) -> str | None:
        pending = services.background.submit(slack_email_lookup(client), slack_user_id)
        try:
            return pending.result(timeout=LOOKUP_BUDGET_S)
        except FutureTimeout:
            log.warning("users.info for %s took longer than %.1f s", slack_user_id, LOOKUP_BUDGET_S)
        except SLACK_FAILURES as exc:
            log.warning("users.info for %s failed: %s", slack_user_id, slack_error(exc))
        raise Refusal(SLACK_DID_NOT_SAY, after_ack=True)

    def whom_to_ask(text: str) -> str:
        """The refusal, naming the admins who can add or reactivate the person."""
        try:
            admins = services.core.users.admins()
        except PORTAL_UNAVAILABLE:
            return text
        if not admins:
            return text
        names = ", ".join(f"{admin.name} ({admin.email})" for admin in admins[:ADMINS_NAMED])
        more = f" and {len(admins) - ADMINS_NAMED} more" if len(admins) > ADMINS_NAMED else ""
        return f"{text} dbquery admins: {names}{more}."

    def refuse(body, ack, client, respond, slack_user_id: str, refusal: Refusal) -> BoltResponse:
        """Say why, as this kind of payload allows; no listener runs."""
        kind, text = body.get("type"), refusal.text
        if kind == "view_submission":
            block = first_input_block(body.get("view") or {})
            if block:
                return ack(response_action="errors", errors={block: text})
            return ack()
        if kind == "block_suggestion":
            return ack(options=[])
        if body.get("command") and not refusal.after_ack:
            return ack(**not_registered_message(text), response_type="ephemeral")
        response = ack()
        if kind == "block_actions" or (refusal.after_ack and kind != "event_callback"):
            message = not_registered_message(text)
            services.background.submit(reply_privately, client, respond, slack_user_id, message)
        return response

    return resolve_portal_user


__all__ = [
    "PORTAL_USER",
    "RecentUsers",
    "make_portal_user_middleware",
    "portal_user",
    "slack_email_lookup",
]
