"""Who is told on Slack: core's events, turned into cards, approval DMs, reminders and notices.

Subscribed to core.events when the runtime is built, so a request submitted or decided
anywhere (a Slack click, the web, the CLI) updates every Slack message about it. Handlers run
in the thread that published, so each one only queues its Slack calls on the follow-up pool.
Calls about one request run one after another, in the order of the events, so an approval
never overtakes the posting of the approval DMs it must update.

The outcome of a request (completed, failed, rejected) is not posted here: the worker posts it
from its outcome-delivery queue, which retries until it lands exactly once.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Hashable
from concurrent.futures import Executor
from typing import Any

from bot.notifier import SlackNotifier
from bot.services import logged
from core.events import Event, EventKind, LifecycleEvent, PrivateNotice


class InOrderPerKey:
    """Runs tasks on a shared pool, those with the same key one at a time, in submission order."""

    def __init__(self, pool: Executor) -> None:
        self.pool = pool
        self._queues: dict[Hashable, deque[tuple[str, Callable[[], object]]]] = {}
        self._lock = threading.Lock()

    def submit(self, key: Hashable, what: str, task: Callable[[], object]) -> None:
        with self._lock:
            queue = self._queues.get(key)
            if queue is not None:  # a drain for this key is running and will take it
                queue.append((what, task))
                return
            self._queues[key] = deque([(what, task)])
        self.pool.submit(self._drain, key)

    def _drain(self, key: Hashable) -> None:
        while True:
            with self._lock:
                queue = self._queues[key]
                if not queue:
                    del self._queues[key]
                    return
                what, task = queue[0]
            logged(what, task)
            with self._lock:
                queue.popleft()


class SlackSubscriber:
    """The core.events handler of the Slack surface."""

    def __init__(self, notifier: SlackNotifier, pool: Executor) -> None:
        self.notifier = notifier
        self.tasks = InOrderPerKey(pool)

    def __call__(self, event: Event) -> None:
        if isinstance(event, PrivateNotice):
            self.tasks.submit(
                ("person", event.person.id),
                "a private notice",
                lambda: self.notifier.send_private_notice(event),
            )
            return
        work = self._work_for(event)
        if work is not None:
            self.tasks.submit(event.request.id, f"telling Slack of {event.kind}", work)

    def _work_for(self, event: LifecycleEvent) -> Callable[[], Any] | None:
        notifier, request = self.notifier, event.request
        match event.kind:
            case EventKind.SUBMITTED:
                return lambda: notifier.request_submitted(request, list(event.approvers))
            case EventKind.APPROVED | EventKind.REJECTED:
                return lambda: notifier.request_decided(request)
            case EventKind.ASSESSED:
                return lambda: notifier.request_reassessed(request, [])
            case EventKind.STEP_APPROVED:
                return lambda: notifier.step_approved(request, list(event.approvers))
            case EventKind.STARTED:
                return lambda: notifier.execution_started(request)
            case EventKind.REMINDED:
                return lambda: notifier.remind(request, list(event.approvers), [])
            case EventKind.ESCALATED:
                return lambda: notifier.remind(request, [], list(event.admins))
        return None  # completed, failed: the worker's outcome delivery tells the requester


__all__ = ["InOrderPerKey", "SlackSubscriber"]
