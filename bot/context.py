"""What every listener is given: the services, and who is asking (resolved once, by middleware).

The middleware turns the Slack user into the active portal user before any listener runs and
stores it in the Bolt context under PORTAL_USER. Unknown or deactivated people get an
ephemeral answer saying so, and no listener runs for them.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Protocol

from slack_bolt import Ack, App, BoltContext, BoltRequest, BoltResponse
from slack_bolt.context.respond import Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.intake import Envelope, bolt_request
from bot.views.commands import not_registered_message
from core.analysis import Analysis, AnalysisError
from core.analysis_sandbox import analyse_isolated
from core.errors import NotRegistered
from core.jobs import PORTAL_UNAVAILABLE
from core.records import RequestRecord, UserRecord
from core.wiring import Core

PORTAL_USER = "portal_user"
# Set on a request dispatched a second time after its sender was looked up in the background.
RESOLVED_LATE = "dbquery_resolved_late"
USER_CACHE_TTL_S = 30
ANALYSES_KEPT = 256
ADMINS_NAMED = 3
NOT_REGISTERED = (
    "You are not registered in dbquery. Ask a dbquery admin to add you "
    "(`dbquery users add --email <your Slack email> ...`)."
)

PORTAL_DOWN = (
    "dbquery can't reach its database just now, so nothing was stored. "
    "Try again in a minute or two."
)

log = logging.getLogger("dbquery.bot")


class Dispatcher(Protocol):
    """The part of the worker listeners use."""

    def wake(self) -> None: ...

    def deliver_outcome_now(self, request_id: int) -> object: ...


class Notifications(Protocol):
    """The part of the Slack notifier listeners use (core.notify.Notifier's decision hooks)."""

    def request_submitted(self, request: RequestRecord, approvers: list[UserRecord]) -> None: ...

    def request_decided(self, request: RequestRecord) -> None: ...

    def approved_by_policy(self, request: RequestRecord) -> None: ...

    def step_approved(self, request: RequestRecord, second_approvers: list[UserRecord]) -> None: ...

    def request_reassessed(
        self, request: RequestRecord, new_approvers: list[UserRecord]
    ) -> None: ...


@dataclass(frozen=True)
class Services:
    core: Core
    notifier: Notifications
    worker: Dispatcher
    background: Executor  # checks that race the acknowledgement (submitted forms, look-ups)
    follow_ups: Executor  # what listeners do once Slack has its acknowledgement

    def after_ack(self, what: str, work: Callable[..., object], *args: Any) -> None:
        """Run `work(*args)` on the follow-up pool; the listener returns at once.

        Bolt runs listeners on a bounded pool and waits for their ack(): follow-up work kept
        there (Slack calls, a portal write waiting for a lock) would hold up the
        acknowledgements of the requests queued behind it. Failures are logged with their
        traceback; raised inside a listener after ack(), they would also make Bolt discard
        the acknowledgement if it had not gone out yet.
        """
        self.follow_ups.submit(_logged, what, work, *args)


def portal_user(context: BoltContext) -> UserRecord:
    """The active portal user behind this request (set by the middleware)."""
    return context[PORTAL_USER]


def _logged(what: str, work: Callable[..., object], *args: Any) -> None:
    try:
        work(*args)
    except PORTAL_UNAVAILABLE as exc:
        log.warning("%s: the portal database did not answer (%s)", what, type(exc).__name__)
    except Exception:  # the person was answered already; nothing else can report this
        log.exception("%s failed after Slack was answered", what)


# --- analyses shown next to requests --------------------------------------------------------


class _RecentAnalyses:
    """Analyses by request uuid, least recently used dropped first.

    A request's content never changes, so its analysis never does; parsing a long script
    takes seconds, and the same request is rendered again and again (approval DMs, their
    updates, reminders, the Home tab, /dbquery pending).
    """

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[uuid.UUID, Analysis | None] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: uuid.UUID) -> tuple[bool, Analysis | None]:
        with self._lock:
            if key not in self._entries:
                return False, None
            self._entries.move_to_end(key)
            return True, self._entries[key]

    def put(self, key: uuid.UUID, analysis: Analysis | None) -> None:
        with self._lock:
            self._entries[key] = analysis
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)


_ANALYSES = _RecentAnalyses(ANALYSES_KEPT)


def remember_analysis(request: RequestRecord, analysis: Analysis) -> None:
    """Keep the analysis made at submit time, so rendering the request does not redo it."""
    _ANALYSES.put(request.uuid, analysis)


def analysis_of(request: RequestRecord) -> Analysis | None:
    """The analysis of a stored request (None when it no longer parses)."""
    known, analysis = _ANALYSES.get(request.uuid)
    if known:
        return analysis
    try:
        analysis = analyse_isolated(request.database_type, request.content, request.submission_type)
    except AnalysisError:
        analysis = None
    _ANALYSES.put(request.uuid, analysis)
    return analysis


def analyses_for(requests: Iterable[RequestRecord]) -> dict[uuid.UUID, Analysis]:
    found = {}
    for request in requests:
        analysis = analysis_of(request)
        if analysis is not None:
            found[request.uuid] = analysis
    return found


# --- telling one person something privately -------------------------------------------------


def reply_privately(
    client: WebClient, respond: Respond | None, slack_user_id: str, message: dict[str, Any]
) -> None:
    """An ephemeral answer: through response_url when Slack gave one (slash commands, message
    buttons), else in the person's DM with the app (App Home buttons have no response_url)."""
    try:
        if respond is not None and respond.response_url:
            respond(**message, response_type="ephemeral", replace_original=False)
            return
        channel = client.conversations_open(users=slack_user_id)["channel"]["id"]
        client.chat_postEphemeral(channel=channel, user=slack_user_id, **message)
    except (SlackApiError, SlackClientError, OSError) as exc:
        log.warning("could not answer %s privately: %s", slack_user_id, _slack_error(exc))


def _slack_error(exc: Exception) -> str:
    if isinstance(exc, SlackApiError):
        return str(exc.response.get("error", "error"))
    return type(exc).__name__


# --- the middleware -------------------------------------------------------------------------


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


class _EmailLookupNeeded(Exception):
    """No stored link: finding the person needs users.info, which waits until after the ack."""


def _defer_email_lookup(_slack_user_id: str) -> str | None:
    raise _EmailLookupNeeded


def slack_email_lookup(client: WebClient) -> Callable[[str], str | None]:
    def email_of(slack_user_id: str) -> str | None:
        profile = client.users_info(user=slack_user_id)["user"].get("profile") or {}
        return profile.get("email")

    return email_of


def first_input_block(view: dict[str, Any]) -> str | None:
    for block in view.get("blocks") or []:
        if isinstance(block, dict) and block.get("type") == "input":
            block_id = block.get("block_id")
            if isinstance(block_id, str) and block_id:
                return block_id
    return None


def make_portal_user_middleware(
    app: App, services: Services, recent: RecentUsers | None = None
) -> Callable[..., BoltResponse | None]:
    users = services.core.users
    recent = recent or RecentUsers()

    def resolve_portal_user(
        req: BoltRequest,
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
                user = users.resolve_slack_user(slack_user_id, _defer_email_lookup)
            except NotRegistered as exc:
                return refuse(body, ack, client, respond, slack_user_id, whom_to_ask(exc.message))
            except _EmailLookupNeeded:
                return resolve_after_ack(req, body, ack, client, respond, slack_user_id)
            except PORTAL_UNAVAILABLE as exc:
                log.warning(
                    "cannot look up %s: the portal database did not answer (%s)",
                    slack_user_id,
                    type(exc).__name__,
                )
                return refuse(body, ack, client, respond, slack_user_id, PORTAL_DOWN)
            recent.remember(slack_user_id, user)
        context[PORTAL_USER] = user
        return next()

    def whom_to_ask(text: str) -> str:
        """The refusal, naming the admins who can add or reactivate the person."""
        try:
            admins = services.core.requests.admins()
        except PORTAL_UNAVAILABLE:
            return text
        if not admins:
            return text
        names = ", ".join(f"{admin.name} ({admin.email})" for admin in admins[:ADMINS_NAMED])
        more = f" and {len(admins) - ADMINS_NAMED} more" if len(admins) > ADMINS_NAMED else ""
        return f"{text} dbquery admins: {names}{more}."

    def refuse(body, ack, client, respond, slack_user_id: str, text: str) -> BoltResponse:
        """Answer `text` (not registered, database down) as this kind of payload allows; stop."""
        kind = body.get("type")
        if kind == "view_submission":
            block = first_input_block(body.get("view") or {})
            if block:
                return ack(response_action="errors", errors={block: text})
            return ack()
        if kind == "block_suggestion":
            return ack(options=[])
        if body.get("command"):
            return ack(**not_registered_message(text), response_type="ephemeral")
        response = ack()
        if kind == "block_actions":
            message = not_registered_message(text)
            services.background.submit(reply_privately, client, respond, slack_user_id, message)
        return response

    def resolve_after_ack(req, body, ack, client, respond, slack_user_id: str) -> BoltResponse:
        # A person seen for the first time is found by the email Slack has for them. That is a
        # Web API call, so Slack gets its acknowledgement now; once the link is stored the same
        # request goes through the app again and finds the person in the portal database.
        kind = body.get("type")
        if kind in ("view_submission", "block_suggestion") or req.context.get(RESOLVED_LATE):
            # Only linked people are shown modals; nothing sensible to defer here.
            return refuse(body, ack, client, respond, slack_user_id, whom_to_ask(NOT_REGISTERED))
        response = ack()
        services.background.submit(lookup_then_redispatch, req, client, respond, slack_user_id)
        return response

    def lookup_then_redispatch(req: BoltRequest, client, respond, slack_user_id: str) -> None:
        try:
            users.resolve_slack_user(slack_user_id, slack_email_lookup(client))
        except NotRegistered as exc:
            if req.body.get("type") != "event_callback":
                message = not_registered_message(whom_to_ask(exc.message))
                reply_privately(client, respond, slack_user_id, message)
            return
        except (SlackApiError, SlackClientError, OSError) as exc:
            log.warning("users.info for %s failed: %s", slack_user_id, _slack_error(exc))
            message = {"text": "Slack did not tell dbquery who you are just now; try again."}
            reply_privately(client, respond, slack_user_id, message)
            return
        except PORTAL_UNAVAILABLE as exc:
            log.warning(
                "cannot look up %s: the portal database did not answer (%s)",
                slack_user_id,
                type(exc).__name__,
            )
            if req.body.get("type") != "event_callback":
                reply_privately(client, respond, slack_user_id, not_registered_message(PORTAL_DOWN))
            return
        if req.mode == "socket_mode":
            again = BoltRequest(
                body=req.body, headers=req.headers, context={RESOLVED_LATE: True}, mode=req.mode
            )
        else:
            again = bolt_request(
                Envelope(req.body, req.raw_body), req.headers, {RESOLVED_LATE: True}
            )
        app.dispatch(again)

    return resolve_portal_user


__all__ = [
    "PORTAL_DOWN",
    "PORTAL_UNAVAILABLE",
    "PORTAL_USER",
    "RecentUsers",
    "Dispatcher",
    "Notifications",
    "Services",
    "analyses_for",
    "analysis_of",
    "first_input_block",
    "make_portal_user_middleware",
    "portal_user",
    "remember_analysis",
    "reply_privately",
    "slack_email_lookup",
]
