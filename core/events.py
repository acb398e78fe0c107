"""What happened to a request, announced after the transaction that did it has committed.

Core publishes one LifecycleEvent per move of a request (submitted, approved, rejected,
started, completed, failed) and per reminder or escalation. Each surface subscribes and tells
people in its own way: the Slack subscriber posts and updates messages, the web surface
refreshes what a browser shows. Core knows nothing of how anyone is told.

Besides lifecycle events, core publishes PrivateNotice: something one person must hear
privately, through an account tied to their identity (a one-time sign-in link, a set-password
link). The Slack subscriber sends it privately to the person's linked Slack account.

Handlers run in the publishing thread, in the order they subscribed, so they must be quick:
a handler that talks to a remote service hands that work to its own pool. A handler that
raises is logged and never stops the others, nor the service call that published.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from core.records import RequestRecord, UserRecord

log = logging.getLogger("dbquery.events")


class EventKind(StrEnum):
    SUBMITTED = "submitted"
    APPROVED = "approved"
    REJECTED = "rejected"
    STARTED = "started"
    COMPLETED = "completed"
    FAILED = "failed"
    ASSESSED = "assessed"  # the cost estimate and risk arrived after the request was announced
    STEP_APPROVED = "step_approved"  # step 1 of 2 is approved; `approvers` give step 2
    REMINDED = "reminded"  # the approvers are due a reminder
    ESCALATED = "escalated"  # the admins are told too (once per request)


# The status each lifecycle move leaves the request in.
KIND_OF_STATUS = {
    "approved": EventKind.APPROVED,
    "rejected": EventKind.REJECTED,
    "executing": EventKind.STARTED,
    "completed": EventKind.COMPLETED,
    "failed": EventKind.FAILED,
}


@dataclass(frozen=True)
class LifecycleEvent:
    kind: EventKind
    request: RequestRecord  # the row as the committed transaction left it
    at: datetime
    # Who should hear of it, where core decided that (the approvers of a submitted or
    # reminded request; the admins of an escalated one). Empty for the other kinds.
    approvers: tuple[UserRecord, ...] = field(default=())
    admins: tuple[UserRecord, ...] = field(default=())


@dataclass(frozen=True)
class PrivateNotice:
    person: UserRecord
    text: str  # plain text, no markup
    link_url: str | None = None
    link_label: str | None = None  # e.g. "Sign in to dbquery"
    expires_at: datetime | None = None


Event = LifecycleEvent | PrivateNotice
Handler = Callable[[Event], None]


class EventBus:
    """Subscribers of events; publish() calls each of them in turn.

    A handler receives every kind of event and ignores the kinds it does not serve.
    """

    def __init__(self) -> None:
        self._handlers: tuple[tuple[str, Handler], ...] = ()
        self._lock = threading.Lock()

    def subscribe(self, name: str, handler: Handler) -> Callable[[], None]:
        """Add `handler` under `name` (used in logs); returns a function that removes it."""
        entry = (name, handler)
        with self._lock:
            self._handlers = (*self._handlers, entry)

        def unsubscribe() -> None:
            with self._lock:
                self._handlers = tuple(h for h in self._handlers if h is not entry)

        return unsubscribe

    def publish(self, event: Event) -> None:
        for name, handler in self._handlers:
            try:
                handler(event)
            except Exception:
                log.exception("%s could not handle %s", name, _describe(event))


def _describe(event: Event) -> str:
    if isinstance(event, LifecycleEvent):
        return f"{event.kind} of request {event.request.uuid}"
    return f"a private notice to {event.person.id}"
