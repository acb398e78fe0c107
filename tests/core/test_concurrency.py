"""Races between deciders and between workers, on PostgreSQL and on SQLite.

Every thread has its own engine and services, as separate `serve` processes would, and all of
them are released at once by a barrier.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import pytest

from core.errors import InvalidTransition
from core.records import RequestRecord, UserRecord
from core.requests import RequestService
from tests.portal import (
    BACKENDS,
    add_people,
    dispose,
    fresh_portal_url,
    portal_services,
    queue_of,
    submit_query,
)

T = TypeVar("T")
DECIDERS = 8
CLAIMERS = 2
APPROVED_REQUESTS = 50
RACE_TIMEOUT_S = 60


@dataclass
class Portal:
    url: str
    requests: RequestService
    requester: UserRecord
    deciders: list[UserRecord]  # managers of the requester's pod, then an admin


@pytest.fixture(scope="module", params=BACKENDS)
def portal(request, make_pg_database, tmp_path_factory) -> Iterator[Portal]:
    url = fresh_portal_url(request.param, make_pg_database, tmp_path_factory.mktemp("race"))
    requests, users = portal_services(url)
    people = add_people(users)
    managers = [
        users.add(email=f"m{i}@example.com", name=f"Manager {i}", role="manager", pod="payments")
        for i in range(DECIDERS - 2)
    ]
    yield Portal(url, requests, people.developer, [people.manager, *managers, people.admin])
    dispose(requests)


def run_at_once(tasks: list[Callable[[], T]]) -> list[T | Exception]:
    """Run every task in its own thread, all released together; results in task order."""
    barrier = threading.Barrier(len(tasks))

    def released(task: Callable[[], T]) -> T | Exception:
        barrier.wait(timeout=RACE_TIMEOUT_S)
        try:
            return task()
        except Exception as exc:  # returned, so the test can assert on every outcome
            return exc

    with ThreadPoolExecutor(max_workers=len(tasks)) as pool:
        futures = [pool.submit(released, task) for task in tasks]
        return [future.result(timeout=RACE_TIMEOUT_S) for future in futures]


def services_per_thread(portal: Portal, count: int) -> list[RequestService]:
    """Separate engines, each already connected so the barrier releases real queries at once."""
    services = [portal_services(portal.url)[0] for _ in range(count)]
    for service in services:
        service.counts_by_status()
    return services


def _submit(portal: Portal) -> RequestRecord:
    return submit_query(portal.requests, portal.requester)


@pytest.mark.parametrize("round_", range(3))
def test_eight_simultaneous_approvals_record_exactly_one(portal, round_):
    request = _submit(portal)
    services = services_per_thread(portal, DECIDERS)
    try:
        outcomes = run_at_once(
            [
                lambda s=service, d=decider: s.approve(request.uuid, d.id)
                for service, decider in zip(services, portal.deciders, strict=True)
            ]
        )
    finally:
        for service in services:
            dispose(service)

    wins = [o for o in outcomes if isinstance(o, RequestRecord)]
    losses = [o for o in outcomes if isinstance(o, InvalidTransition)]
    assert len(wins) == 1, outcomes
    assert len(losses) == DECIDERS - 1, outcomes
    winner = wins[0].approver
    for loss in losses:
        assert f"Already approved by {winner.name}" in str(loss)
        assert loss.current_status == "approved"
    stored = portal.requests.get(request.uuid)
    assert stored == wins[0]
    assert (stored.status, stored.approver) == ("approved", winner)


def test_simultaneous_approvals_and_rejections_record_exactly_one_decision(portal):
    request = _submit(portal)
    services = services_per_thread(portal, DECIDERS)
    tasks: list[Callable[[], RequestRecord]] = []
    for i, (service, decider) in enumerate(zip(services, portal.deciders, strict=True)):
        if i % 2:
            tasks.append(lambda s=service, d=decider: s.reject(request.uuid, d.id, "no"))
        else:
            tasks.append(lambda s=service, d=decider: s.approve(request.uuid, d.id))
    try:
        outcomes = run_at_once(tasks)
    finally:
        for service in services:
            dispose(service)

    wins = [o for o in outcomes if isinstance(o, RequestRecord)]
    losses = [o for o in outcomes if isinstance(o, InvalidTransition)]
    assert (len(wins), len(losses)) == (1, DECIDERS - 1), outcomes
    stored = portal.requests.get(request.uuid)
    assert stored == wins[0]
    verb = "approved" if stored.status == "approved" else "rejected"
    assert all(f"Already {verb} by {stored.approver.name}" in str(loss) for loss in losses)


def test_two_workers_claim_each_approved_request_exactly_once(portal):
    # Approvals left by the races above are claimable too.
    approved = {r.uuid for r in portal.requests.recent(status="approved", limit=1000)}
    approved |= {
        portal.requests.approve(_submit(portal).uuid, portal.deciders[0].id).uuid
        for _ in range(APPROVED_REQUESTS)
    }
    services = services_per_thread(portal, CLAIMERS)

    def claim_until_none(service: RequestService) -> list[RequestRecord]:
        claimed = []
        while (claim := queue_of(service).claim_next_approved()) is not None:
            record, lease = claim
            lease.release()
            claimed.append(record)
        return claimed

    try:
        outcomes = run_at_once([lambda s=service: claim_until_none(s) for service in services])
    finally:
        for service in services:
            dispose(service)

    assert not [o for o in outcomes if isinstance(o, Exception)], outcomes
    claimed = [record.uuid for records in outcomes for record in records]
    assert len(claimed) == len(set(claimed)), "a request was claimed twice"
    assert set(claimed) == approved
    assert all(record.status == "executing" for records in outcomes for record in records)
    assert portal.requests.counts_by_status().get("approved", 0) == 0
