"""Slack's side of what approval policies do outside a click: an estimate that arrives after the
request was announced, step 1 of a two-step approval, an approval given by a policy."""

from __future__ import annotations

from bot.context import Services
from core.approvals import is_policy_decision
from core.events import Event, EventKind, LifecycleEvent


def subscribe_policy_events(services: Services) -> None:
    """Core publishes in its own thread; the Slack calls go to the follow-up pool."""
    notifier = services.notifier

    def handle(event: Event) -> None:
        if not isinstance(event, LifecycleEvent):
            return
        request = event.request
        if event.kind == EventKind.ASSESSED:
            services.after_ack("show an estimate", notifier.request_reassessed, request, [])
        elif event.kind == EventKind.STEP_APPROVED:
            services.after_ack(
                "ask for the second approval", notifier.step_approved, request, event.approvers
            )
        elif event.kind == EventKind.APPROVED and is_policy_decision(request.approver_email):
            services.after_ack("announce a policy's approval", notifier.approved_by_policy, request)
            services.worker.wake()

    services.core.events.subscribe("slack policy notices", handle)


__all__ = ["subscribe_policy_events"]
