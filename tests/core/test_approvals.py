"""Approval policies on a real portal (PostgreSQL and SQLite) and a real PostgreSQL target:
auto-approval recorded as such, two-step approval (also with concurrent clicks), expiry and
windows driven by a controllable clock."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict
from sqlalchemy import delete, update

from core.analysis import analyse
from core.approvals import ApprovalPolicies, StepOutcome
from core.errors import InvalidSubmission, InvalidTransition, NotAllowed
from core.events import EventBus, EventKind, LifecycleEvent
from core.queue import ExecutionQueue
from core.records import RequestRecord, UserRecord
from core.request_rows import RequestRows
from core.requests import RequestService, Submission
from core.secrets import SecretStore
from core.users import UserService
from db import approval_repository as approvals_repo
from db.models import ApprovalStep, QueryRequest
from db.session import make_engine, make_session_factory
from tests.conftest import pg_url_for, wait_until
from tests.portal import (
    BACKENDS,
    People,
    add_people,
    fresh_portal_url,
    make_catalogue,
)

WEDNESDAY_NOON = datetime(2026, 1, 14, 12, 0, tzinfo=UTC)
SATURDAY_WINDOW_OPENS = datetime(2026, 1, 17, 21, 0, tzinfo=UTC)  # Sat 22:00 in Berlin


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="module")
def target_db(pg_database: str) -> str:
    with psycopg.connect(pg_url_for(pg_database), autocommit=True) as admin:
        admin.execute("CREATE TABLE orders (id int PRIMARY KEY, total int)")
        admin.execute("INSERT INTO orders SELECT g, g FROM generate_series(1, 5000) g")
        admin.execute("ANALYZE orders")
    return pg_database


def _instances(target_db: str) -> list[dict]:
    params = conninfo_to_dict(pg_url_for(target_db))
    return [
        {
            "id": "pg-shop",
            "name": "Shop",
            "type": "postgresql",
            "host": params.get("host", "127.0.0.1"),
            "port": int(params.get("port", 5432)),
            "databases": [target_db],
            "policies": {
                "auto_approve": {"name": "small-reads", "kinds": ["read"],
                                 "max_estimated_rows": 10_000},
                "second_approval": [
                    {"name": "schema-changes", "kinds": ["ddl"]},
                    {"name": "server-functions", "kinds": ["admin"], "group": "platform"},
                ],
                "expire_after_h": 72,
                "window": "Sat 22:00–Sun 04:00 Europe/Berlin",
            },
        }
    ]  # fmt: skip


@dataclass
class Portal:
    requests: RequestService
    users: UserService
    people: People
    policies: ApprovalPolicies
    clock: Clock
    target: str
    second_admin: UserRecord
    events: list[LifecycleEvent]
    queue: ExecutionQueue

    def submit(
        self,
        query: str,
        requester: UserRecord | None = None,
        run_after: datetime | None = None,
    ) -> RequestRecord:
        requester = requester or self.people.developer
        record, _ = self.requests.submit(
            requester.id,
            Submission(
                target=f"pg-shop/{self.target}",
                submission_type="query",
                query=query,
                run_after=run_after,
            ),
        )
        return record

    def approve(self, request: RequestRecord, person: UserRecord) -> StepOutcome:
        """One approval click through the service, as its step outcome."""
        decided = self.requests.approve(request.uuid, person.id)
        state = self.state(decided)
        done = [s for s in state.steps if s.approver_id is not None]
        return StepOutcome(
            approved=decided.status == "approved", step=len(done), of=state.approvals_required
        )

    def state(self, request: RequestRecord):
        return self.requests.policy_state(request)

    def claim_all(self) -> list[int]:
        """Claim every request the worker may start now (other tests' leftovers included)."""
        claimed = []
        while (won := self.queue.claim_next_approved()) is not None:
            won[1].release()
            claimed.append(won[0].id)
        return claimed

    def kinds(self, request: RequestRecord) -> list[EventKind]:
        return [e.kind for e in self.events if e.request.id == request.id]


@pytest.fixture(scope="module", params=BACKENDS)
def portal(request, make_pg_database, tmp_path_factory, target_db) -> Iterator[Portal]:
    url = fresh_portal_url(request.param, make_pg_database, tmp_path_factory.mktemp("approvals"))
    clock = Clock(WEDNESDAY_NOON)
    catalogue = make_catalogue(instances=_instances(target_db))
    sessions = make_session_factory(make_engine(url))
    bus = EventBus()
    events: list[LifecycleEvent] = []
    bus.subscribe("test", events.append)
    policies = ApprovalPolicies(catalogue, SecretStore(), clock)
    # A generous wait: these tests read the estimate's outcome right after submitting.
    rows = RequestRows(sessions, clock, bus)
    requests = RequestService(sessions, catalogue, rows=rows, policies=policies, assess_wait_s=30)
    users = UserService(sessions, catalogue)
    people = add_people(users)
    second_admin = users.add(email="bea@example.com", name="Bea Admin", role="admin", pod=None)
    yield Portal(
        requests=requests,
        users=users,
        people=people,
        policies=policies,
        clock=clock,
        target=target_db,
        second_admin=second_admin,
        events=events,
        queue=ExecutionQueue(rows, policies),
    )
    sessions.engine.dispose()


@pytest.fixture(autouse=True)
def wednesday(portal: Portal) -> None:
    portal.clock.now = WEDNESDAY_NOON


def test_a_small_read_is_approved_by_policy_and_recorded_as_such(portal):
    request = portal.submit("SELECT * FROM orders WHERE id < 100")

    assert request.status == "approved"
    assert request.approver is None
    assert request.approver_email == "policy:small-reads"
    assert request.approved_at == WEDNESDAY_NOON
    state = portal.state(request)
    assert state.risk_level == "low"
    assert state.estimate_summary.startswith("~9")  # about 99 rows
    assert state.auto_approved_by == "small-reads"
    assert [(s.step, s.approver_id, s.approver_email) for s in state.steps] == [
        (1, None, "policy:small-reads")
    ]
    # Nobody is asked: the submission is announced with no approvers, then the approval.
    assert portal.kinds(request) == [EventKind.SUBMITTED, EventKind.APPROVED]
    submitted = next(e for e in portal.events if e.request.id == request.id)
    assert submitted.approvers == ()


def test_a_read_over_the_policy_rows_waits_for_a_person(portal):
    request = portal.submit("SELECT * FROM orders a CROSS JOIN orders b")

    assert request.status == "pending"
    state = portal.state(request)
    assert state.risk_level == "medium"
    assert state.estimate_summary.startswith("~25,000,000 rows returned")
    assert state.approvals_required == 1


def test_a_schema_change_needs_two_people(portal):
    people = portal.people
    request = portal.submit("ALTER TABLE orders ADD COLUMN note text")
    assert portal.state(request).approvals_required == 2
    assert portal.state(request).risk_level == "high"

    assert portal.approve(request, people.manager) == StepOutcome(approved=False, step=1, of=2)
    assert portal.requests.get(request.uuid).status == "pending"
    step_event = [e for e in portal.events if e.request.id == request.id][-1]
    assert step_event.kind == EventKind.STEP_APPROVED
    assert {p.email for p in step_event.approvers} == {people.admin.email, "bea@example.com"}

    with pytest.raises(NotAllowed, match="approved step 1 already"):
        portal.approve(request, people.manager)
    with pytest.raises(NotAllowed, match="only a manager of pod 'payments' or an admin"):
        portal.approve(request, people.other_manager)
    pod_manager = portal.users.add(
        email="mo2@example.com", name="Mo Two", role="manager", pod="payments"
    )
    with pytest.raises(NotAllowed, match="policy schema-changes needs an admin"):
        portal.approve(request, pod_manager)
    assert portal.requests.get(request.uuid).status == "pending"

    assert portal.approve(request, people.admin) == StepOutcome(approved=True, step=2, of=2)
    approved = portal.requests.get(request.uuid)
    assert approved.status == "approved"
    assert approved.approver.id == people.admin.id
    steps = portal.state(request).steps
    assert [(s.step, s.approver_email, s.policy_name) for s in steps] == [
        (1, people.manager.email, None),
        (2, people.admin.email, "schema-changes"),
    ]


def test_concurrent_second_approvals_approve_once(portal):
    request = portal.submit("CREATE INDEX ON orders (total)")
    portal.approve(request, portal.people.manager)
    barrier = threading.Barrier(2)
    outcomes: list[object] = []

    def click(person: UserRecord) -> None:
        barrier.wait()
        try:
            outcomes.append(portal.approve(request, person))
        except (InvalidTransition, NotAllowed) as exc:
            outcomes.append(exc)

    threads = [
        threading.Thread(target=click, args=(p,))
        for p in (portal.people.admin, portal.second_admin)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    approved = [o for o in outcomes if isinstance(o, StepOutcome)]
    lost = [o for o in outcomes if isinstance(o, InvalidTransition)]
    assert approved == [StepOutcome(approved=True, step=2, of=2)]
    winner = portal.requests.get(request.uuid).approver
    assert len(lost) == 1 and f"Already approved by {winner.name}" in str(lost[0])
    assert len(portal.state(request).steps) == 2


def test_concurrent_first_approvals_give_one_step(portal):
    request = portal.submit("DROP INDEX IF EXISTS nothing_here")
    barrier = threading.Barrier(2)
    outcomes: list[object] = []
    pod_manager_2 = portal.users.add(
        email=f"mia{request.short_id}@example.com", name="Mia", role="manager", pod="payments"
    )

    def click(person: UserRecord) -> None:
        barrier.wait()
        try:
            outcomes.append(portal.approve(request, person))
        except (InvalidTransition, NotAllowed) as exc:
            outcomes.append(exc)

    threads = [
        threading.Thread(target=click, args=(p,)) for p in (portal.people.manager, pod_manager_2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert StepOutcome(approved=False, step=1, of=2) in outcomes
    # The slower click either lost the race for step 1, or came after it and, as a step 2
    # from a manager, is refused: this policy's second approval needs an admin.
    (lost,) = [o for o in outcomes if not isinstance(o, StepOutcome)]
    assert "Step 1 of 2 was approved by" in str(lost) or "needs an admin" in str(lost)
    assert [s.step for s in portal.state(request).steps] == [1]
    assert portal.requests.get(request.uuid).status == "pending"


def test_a_pending_request_expires_after_72_hours(portal):
    request = portal.submit("UPDATE orders SET total = 0 WHERE id = 1")
    assert request.status == "pending"

    portal.clock.now = WEDNESDAY_NOON + timedelta(hours=71, minutes=59)
    assert request.id not in [r.id for r in portal.requests.expire_stale()]

    portal.clock.now = WEDNESDAY_NOON + timedelta(hours=72)
    assert request.id in [r.id for r in portal.requests.expire_stale()]
    event = [e for e in portal.events if e.request.id == request.id][-1]
    assert event.kind == EventKind.REJECTED
    assert portal.people.manager.email in {p.email for p in event.approvers}

    expired = portal.requests.get(request.uuid)
    assert expired.status == "rejected"
    assert expired.rejection_reason == "expired: no decision in 72 h"
    assert expired.approver_email == "policy:expire_after_h"
    assert portal.requests.expire_stale() == []


def test_an_approved_write_waits_for_the_window(portal):
    request = portal.submit("UPDATE orders SET total = 0 WHERE id = 2")
    portal.approve(request, portal.people.manager)

    assert portal.state(request).not_before == SATURDAY_WINDOW_OPENS
    with portal.requests.sessions() as session:
        assert approvals_repo.next_runnable_approved_id(session, WEDNESDAY_NOON) != request.id
        assert approvals_repo.next_scheduled_start(session) <= SATURDAY_WINDOW_OPENS
    with portal.requests.sessions() as session:
        due = approvals_repo.next_runnable_approved_id(session, SATURDAY_WINDOW_OPENS)
    assert due is not None

    # The worker's last check holds a write outside the window, and lets it in.
    with portal.requests.sessions.begin() as session:
        assert not portal.policies.may_claim(session, request, "write")
    assert request.id not in portal.claim_all()
    portal.clock.now = SATURDAY_WINDOW_OPENS + timedelta(minutes=5)
    assert request.id in portal.claim_all()


def test_run_after_is_honoured_and_a_late_approval_runs_at_once(portal):
    query = "SELECT * FROM orders a CROSS JOIN orders b LIMIT 20000"
    with pytest.raises(InvalidSubmission, match="within 90 days"):
        portal.submit(query, run_after=WEDNESDAY_NOON + timedelta(days=91))
    with pytest.raises(InvalidSubmission, match="time zone") as caught:
        portal.submit(query, run_after=datetime(2026, 1, 15, 9, 0))
    assert caught.value.field == "run_after"

    later = WEDNESDAY_NOON + timedelta(hours=3)
    request = portal.submit(query, run_after=later)
    assert portal.state(request).run_after == later
    portal.approve(request, portal.people.manager)
    assert portal.state(request).not_before == later
    assert request.id not in portal.claim_all()
    portal.clock.now = later
    assert request.id in portal.claim_all()
    assert portal.requests.get(request.uuid).status == "executing"

    late = portal.submit(query, run_after=WEDNESDAY_NOON - timedelta(hours=1))
    portal.approve(late, portal.people.manager)
    assert portal.state(late).not_before is None


def test_an_estimate_that_cannot_reach_the_target_never_blocks_and_counts_as_unknown(portal):
    catalogue = make_catalogue(
        instances=[{**_instances(portal.target)[0], "secret": "env:DBQUERY_NO_SUCH_VARIABLE"}],
    )
    policies = ApprovalPolicies(catalogue, SecretStore(environ={}), portal.clock)
    analysis = analyse("postgresql", "SELECT 1")
    instance = catalogue.instance("pg-shop")

    assessment = policies.assess(instance, portal.target, analysis, "SELECT 1", "query")

    assert assessment.estimate.summary() == (
        "no estimate: secret env:DBQUERY_NO_SUCH_VARIABLE: variable DBQUERY_NO_SUCH_VARIABLE"
        " is not set"
    )
    assert assessment.risk.level == "medium"


def test_an_estimate_slower_than_submit_follows_as_its_own_event(portal):
    impatient = RequestService(
        portal.requests.sessions,
        portal.requests.catalogue,
        portal.clock,
        events=portal.requests.events,
        policies=portal.policies,
        assess_wait_s=0,
    )
    big, _ = impatient.submit(
        portal.people.developer.id,
        Submission(
            target=f"pg-shop/{portal.target}",
            submission_type="query",
            query="SELECT * FROM orders a, orders b",
        ),
    )
    small, _ = impatient.submit(
        portal.people.developer.id,
        Submission(
            target=f"pg-shop/{portal.target}",
            submission_type="query",
            query="SELECT * FROM orders WHERE id = 7",
        ),
    )

    wait_until(lambda: EventKind.ASSESSED in portal.kinds(big), what="the late estimate")
    assert portal.kinds(big)[0] == EventKind.SUBMITTED
    assert portal.state(big).risk_level == "medium"
    # The small read is approved by policy once its estimate arrives, with nobody asked.
    wait_until(lambda: EventKind.APPROVED in portal.kinds(small), what="the late approval")
    assert portal.requests.get(small.uuid).approver_email == "policy:small-reads"


def test_an_estimate_lost_to_a_restart_is_made_again(portal):
    request = portal.submit("SELECT * FROM orders WHERE id = 9")
    with portal.requests.sessions.begin() as session:
        # As if the process had died between storing the request and recording its estimate.
        approvals_repo.update_request_policy(session, request.id, risk_level=None)
        session.execute(delete(ApprovalStep).where(ApprovalStep.request_id == request.id))
        session.execute(
            update(QueryRequest)
            .where(QueryRequest.id == request.id)
            .values(status="pending", approver_email=None, approved_at=None)
        )
    assert portal.requests.reassess_stale(older_than=timedelta(minutes=1)) == []

    redone = portal.requests.reassess_stale(older_than=timedelta(0))

    assert [r.id for r in redone] == [request.id]
    assert portal.state(request).risk_level == "low"
    assert portal.requests.get(request.uuid).approver_email == "policy:small-reads"


def test_after_step_one_reminders_go_to_the_second_group(portal):
    request = portal.submit("CREATE INDEX ON orders (id, total)")
    pod = {p.email for p in portal.requests.approvers_for(request)}
    assert portal.people.manager.email in pod

    portal.approve(request, portal.people.manager)

    second = {p.email for p in portal.requests.approvers_for(request)}
    assert second == {portal.people.admin.email, "bea@example.com"}


def test_waiting_lists_follow_the_step_each_person_may_give(portal):
    people = portal.people
    request = portal.submit("SELECT pg_cancel_backend(0)")
    assert (portal.state(request).approvals_required, request.pod_id) == (2, "payments")

    def waiting_for(person) -> bool:
        return request.id in {r.id for r in portal.requests.pending_for(person, limit=100)}

    # Step 1: the requester's pod's managers and the admins, not the second group.
    assert waiting_for(people.manager) and waiting_for(people.admin)
    assert not waiting_for(people.other_manager)
    assert not waiting_for(people.developer)

    portal.approve(request, people.manager)
    # Step 2: the second group (pod platform) and the admins; not step 1's approver.
    assert waiting_for(people.other_manager) and waiting_for(people.admin)
    assert not waiting_for(people.manager)
    assert portal.approve(request, people.other_manager) == StepOutcome(approved=True, step=2, of=2)
    assert not waiting_for(people.other_manager) and not waiting_for(people.admin)
