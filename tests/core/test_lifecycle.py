"""The six statuses, the only legal transitions, and who may decide: as rules and in the service.

Every (from, to) pair goes through RequestService on PostgreSQL and on SQLite: a legal step
lands, an illegal one raises InvalidTransition and leaves the row exactly as it was.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import SimpleNamespace

import pytest

from core.errors import InvalidTransition
from core.lifecycle import (
    FINAL_STATUSES,
    LEGAL_TRANSITIONS,
    Role,
    Status,
    is_legal,
    why_cannot_view,
)
from core.lifecycle import why_cannot_decide as why_not
from core.records import RequestRecord
from core.requests import RequestService
from db import repository as repo
from tests.portal import (
    BACKENDS,
    People,
    TickingClock,
    add_people,
    bring_to,
    dispose,
    fresh_portal_url,
    move,
    portal_services,
    queue_of,
    submit_query,
)

# The seed's state diagram, written out independently of core.lifecycle.
SEED_LEGAL = {
    ("pending", "approved"),
    ("pending", "rejected"),
    ("approved", "executing"),
    ("executing", "completed"),
    ("executing", "failed"),
}
ALL_PAIRS = list(itertools.product([s.value for s in Status], repeat=2))
ILLEGAL_PAIRS = [pair for pair in ALL_PAIRS if pair not in SEED_LEGAL]


# --- the pure rules ----------------------------------------------------------------------------


def test_there_are_exactly_the_six_seed_statuses():
    assert {s.value for s in Status} == {
        "pending",
        "approved",
        "rejected",
        "executing",
        "completed",
        "failed",
    }


def test_legal_transitions_are_exactly_the_seed_diagram():
    assert {pair for pair in ALL_PAIRS if is_legal(*pair)} == SEED_LEGAL
    assert {(a.value, b.value) for a, b in LEGAL_TRANSITIONS} == SEED_LEGAL


def test_final_statuses_have_no_way_out():
    assert {s.value for s in FINAL_STATUSES} == {"rejected", "completed", "failed"}
    assert not [pair for pair in SEED_LEGAL if pair[0] in {s.value for s in FINAL_STATUSES}]


REQUESTER = uuid.uuid4()


def person(role: str, pod: str | None, active: bool, me) -> SimpleNamespace:
    return SimpleNamespace(id=me or uuid.uuid4(), role=role, pod_id=pod, is_active=active)


def decide(role: str, pod: str | None = "payments", *, active: bool = True, me=None):
    return why_not(person(role, pod, active, me), requester_id=REQUESTER, request_pod="payments")


def test_a_manager_of_the_pod_and_any_admin_may_decide():
    assert decide(Role.MANAGER) is None
    assert decide(Role.ADMIN, pod=None) is None
    assert decide(Role.ADMIN, pod="platform") is None


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"role": Role.ADMIN, "me": REQUESTER}, "own request"),
        ({"role": Role.MANAGER, "me": REQUESTER}, "own request"),
        ({"role": Role.MANAGER, "pod": "platform"}, "manager of pod 'payments'"),
        ({"role": Role.MANAGER, "pod": None}, "manager of pod 'payments'"),
        ({"role": Role.DEVELOPER}, "developers cannot"),
        ({"role": Role.MANAGER, "active": False}, "deactivated"),
        ({"role": Role.ADMIN, "active": False}, "deactivated"),
    ],
)
def test_who_may_not_decide_gets_the_reason(kwargs, reason):
    kwargs = dict(kwargs)
    role = kwargs.pop("role")
    assert reason in (decide(role, **kwargs) or "")


def view(role: str, pod: str | None = "payments", *, active: bool = True, me=None):
    return why_cannot_view(
        person(role, pod, active, me), requester_id=REQUESTER, request_pod="payments"
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"role": Role.DEVELOPER, "me": REQUESTER},
        {"role": Role.DEVELOPER, "me": REQUESTER, "pod": None},
        {"role": Role.MANAGER, "me": REQUESTER},
        {"role": Role.MANAGER},
        {"role": Role.ADMIN, "pod": None},
        {"role": Role.ADMIN, "pod": "platform"},
    ],
)
def test_the_requester_the_managers_of_its_pod_and_admins_may_see_a_request(kwargs):
    kwargs = dict(kwargs)
    assert view(kwargs.pop("role"), **kwargs) is None


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"role": Role.DEVELOPER}, "only its requester, a manager of pod 'payments' or an admin"),
        ({"role": Role.DEVELOPER, "pod": "platform"}, "someone else's query and results"),
        ({"role": Role.MANAGER, "pod": "platform"}, "a manager of pod 'payments'"),
        ({"role": Role.MANAGER, "pod": None}, "a manager of pod 'payments'"),
        ({"role": Role.DEVELOPER, "me": REQUESTER, "active": False}, "deactivated"),
        ({"role": Role.ADMIN, "active": False}, "deactivated"),
    ],
)
def test_who_may_not_see_a_request_gets_the_reason(kwargs, reason):
    kwargs = dict(kwargs)
    assert reason in (view(kwargs.pop("role"), **kwargs) or "")


# --- every pair through the service ------------------------------------------------------------


@dataclass
class Portal:
    requests: RequestService
    people: People
    clock: TickingClock

    def new_request(self, status: str) -> RequestRecord:
        return bring_to(self.requests, submit_query(self.requests, self.people.developer), status)

    def has_delivery(self, request: RequestRecord) -> bool:
        with self.requests.sessions() as session:
            return repo.outcome_delivery(session, request.id) is not None


@pytest.fixture(scope="module", params=BACKENDS)
def portal(request, make_pg_database, tmp_path_factory) -> Iterator[Portal]:
    url = fresh_portal_url(request.param, make_pg_database, tmp_path_factory.mktemp("lifecycle"))
    clock = TickingClock()
    requests, users = portal_services(url, clock=clock)
    yield Portal(requests, add_people(users), clock)
    dispose(requests)


@pytest.mark.parametrize(("from_status", "to_status"), sorted(SEED_LEGAL))
def test_legal_transition_lands(portal, from_status, to_status):
    request = portal.new_request(from_status)

    moved = move(portal.requests, request, to_status)

    assert moved.status == to_status
    assert moved.updated_at == portal.clock.now
    assert portal.requests.get(request.uuid) == moved
    assert portal.has_delivery(moved) == (to_status in {"rejected", "completed", "failed"})


@pytest.mark.parametrize(("from_status", "to_status"), ILLEGAL_PAIRS)
def test_illegal_transition_raises_and_changes_nothing(portal, from_status, to_status):
    request = portal.new_request(from_status)
    before = portal.requests.get(request.uuid)
    delivery_before = portal.has_delivery(request)

    with pytest.raises(InvalidTransition) as raised:
        move(portal.requests, request, to_status)

    assert raised.value.current_status == from_status
    assert from_status in str(raised.value)
    after = portal.requests.get(request.uuid)
    assert after == before
    assert (after.status, after.updated_at) == (from_status, before.updated_at)
    assert portal.has_delivery(request) == delivery_before


# --- the named steps refuse every status but their own -----------------------------------------


def _not(status: str) -> list[str]:
    return [s.value for s in Status if s.value != status]


def _approve(portal: Portal, request: RequestRecord) -> object:
    return portal.requests.approve(request.uuid, portal.people.manager.id)


def _reject(portal: Portal, request: RequestRecord) -> object:
    return portal.requests.reject(request.uuid, portal.people.manager.id, "not now")


def _claim(portal: Portal, request: RequestRecord) -> object:
    record, lease = queue_of(portal.requests).claim(request.uuid)
    lease.release()
    return record


def _finish_ok(portal: Portal, request: RequestRecord) -> object:
    return queue_of(portal.requests).finish(request.id, result_json='{"rows": 1}')


def _finish_failed(portal: Portal, request: RequestRecord) -> object:
    return queue_of(portal.requests).finish(request.id, error="boom")


STEPS: dict[str, tuple[str, Callable[[Portal, RequestRecord], object]]] = {
    "approve": ("pending", _approve),
    "reject": ("pending", _reject),
    "claim": ("approved", _claim),
    "finish_ok": ("executing", _finish_ok),
    "finish_failed": ("executing", _finish_failed),
}
STEP_CASES = [(step, status) for step, (own, _) in STEPS.items() for status in _not(own)]


@pytest.mark.parametrize(("step", "status"), STEP_CASES)
def test_named_step_on_a_request_in_another_status_changes_nothing(portal, step, status):
    request = portal.new_request(status)
    before = portal.requests.get(request.uuid)

    with pytest.raises(InvalidTransition) as raised:
        STEPS[step][1](portal, request)

    assert raised.value.current_status == status
    assert portal.requests.get(request.uuid) == before
