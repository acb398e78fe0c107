"""Core announces each committed lifecycle move once, in order, to every subscribed surface."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from core.errors import InvalidTransition
from core.events import EventBus, EventKind, LifecycleEvent, PrivateNotice
from core.requests import RequestService
from core.users import UserService
from db.models import utcnow
from db.session import make_engine, make_session_factory
from tests.portal import (
    BACKENDS,
    TickingClock,
    add_people,
    dispose,
    fresh_portal_url,
    make_catalogue,
    queue_of,
    submit_query,
)


class FakeSurface:
    """A second surface beside Slack: it only records what it hears."""

    def __init__(self, bus: EventBus) -> None:
        self.heard: list[tuple[EventKind, str, str]] = []
        self.lock = threading.Lock()
        self.unsubscribe = bus.subscribe("fake surface", self.hear)

    def hear(self, event) -> None:
        if not isinstance(event, LifecycleEvent):
            return
        with self.lock:
            self.heard.append((event.kind, str(event.request.uuid), str(event.request.status)))

    def of(self, request) -> list[tuple[EventKind, str]]:
        return [(kind, status) for kind, uuid, status in self.heard if uuid == str(request.uuid)]


@pytest.fixture(params=BACKENDS)
def services(request, make_pg_database, tmp_path):
    url = fresh_portal_url(request.param, make_pg_database, tmp_path)
    sessions = make_session_factory(make_engine(url))
    bus = EventBus()
    catalogue = make_catalogue()
    # The clock starts now, so rows the database dates are never in its future.
    requests = RequestService(sessions, catalogue, TickingClock(utcnow()), events=bus)
    users = UserService(sessions, catalogue)
    yield requests, users, bus
    dispose(requests)


def test_every_move_is_heard_once_in_order_after_it_committed(services) -> None:
    requests, users, bus = services
    people = add_people(users)
    surface = FakeSurface(bus)

    done = submit_query(requests, people.developer)
    requests.approve(done.uuid, people.manager.id)
    claimed, lease = queue_of(requests).claim_next_approved()
    lease.release()
    queue_of(requests).finish(claimed.id, result_json='{"rows": 1}')

    refused = submit_query(requests, people.developer)
    requests.reject(refused.uuid, people.manager.id, "not now")

    broken = submit_query(requests, people.developer)
    requests.approve(broken.uuid, people.admin.id)
    claimed, lease = queue_of(requests).claim(broken.uuid)
    lease.release()
    queue_of(requests).finish(claimed.id, error="relation does not exist")

    assert surface.of(done) == [
        (EventKind.SUBMITTED, "pending"),
        (EventKind.APPROVED, "approved"),
        (EventKind.STARTED, "executing"),
        (EventKind.COMPLETED, "completed"),
    ]
    assert surface.of(refused) == [
        (EventKind.SUBMITTED, "pending"),
        (EventKind.REJECTED, "rejected"),
    ]
    assert surface.of(broken) == [
        (EventKind.SUBMITTED, "pending"),
        (EventKind.APPROVED, "approved"),
        (EventKind.STARTED, "executing"),
        (EventKind.FAILED, "failed"),
    ]
    assert len(surface.heard) == 10


def test_a_lost_race_announces_nothing(services) -> None:
    requests, users, bus = services
    people = add_people(users)
    request = submit_query(requests, people.developer)
    surface = FakeSurface(bus)
    requests.approve(request.uuid, people.manager.id)
    with pytest.raises(InvalidTransition, match="Already approved by Maya Manager"):
        requests.reject(request.uuid, people.admin.id, "too late")
    assert surface.of(request) == [(EventKind.APPROVED, "approved")]


def test_submitted_event_names_the_approvers_and_never_the_requester(services) -> None:
    requests, users, bus = services
    people = add_people(users)
    events: list[LifecycleEvent] = []
    bus.subscribe("recorder", events.append)
    submit_query(requests, people.manager)  # the pod's only active manager asks: admins decide
    submit_query(requests, people.developer)
    assert [a.email for a in events[0].approvers] == [people.admin.email]
    assert [a.email for a in events[1].approvers] == [people.manager.email]


def test_a_failing_subscriber_neither_stops_the_others_nor_the_service(services, caplog) -> None:
    requests, users, bus = services
    people = add_people(users)

    def broken(event: LifecycleEvent) -> None:
        raise RuntimeError("surface is down")

    bus.subscribe("broken surface", broken)
    surface = FakeSurface(bus)
    request = submit_query(requests, people.developer)
    assert requests.get(request.uuid).status == "pending"
    assert surface.of(request) == [(EventKind.SUBMITTED, "pending")]
    assert "broken surface could not handle submitted" in caplog.text


def test_reminders_and_escalation_are_announced_with_whom_to_tell(services) -> None:
    requests, users, bus = services
    people = add_people(users)
    request = submit_query(requests, people.developer)
    surface = FakeSurface(bus)
    events: list[LifecycleEvent] = []
    bus.subscribe("recorder", events.append)
    # Zero delays make the pending request due for both at once.
    requests.due_reminders(timedelta(0), timedelta(0))
    assert [kind for kind, _ in surface.of(request)] == [EventKind.REMINDED, EventKind.ESCALATED]
    escalated = events[-1]
    assert [a.email for a in escalated.approvers] == [people.manager.email]
    assert [a.email for a in escalated.admins] == [people.admin.email]


def test_unsubscribed_surface_hears_nothing_more(services) -> None:
    requests, users, bus = services
    people = add_people(users)
    surface = FakeSurface(bus)
    first = submit_query(requests, people.developer)
    surface.unsubscribe()
    submit_query(requests, people.developer)
    assert [uuid for _, uuid, _ in surface.heard] == [str(first.uuid)]


def test_a_private_notice_reaches_subscribers_beside_lifecycle_events(services) -> None:
    requests, users, bus = services
    people = add_people(users)
    heard: list[object] = []
    bus.subscribe("recorder", heard.append)
    notice = PrivateNotice(people.manager, "Your sign-in link", "http://localhost/x", "Sign in")
    bus.publish(notice)
    assert heard == [notice]
