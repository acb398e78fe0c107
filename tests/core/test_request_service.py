"""The request service on PostgreSQL and SQLite: submit, decide, claim, finish, recover."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from core.errors import InvalidSubmission, InvalidTransition, NotAllowed, NotFound, NotRegistered
from core.queue import INTERRUPTED
from core.records import RequestRecord, UserRecord
from core.requests import (
    QUERY_MAX_BYTES,
    SCRIPT_MAX_BYTES,
    RequestService,
    Submission,
)
from core.users import UserService
from db import repository as repo
from db.models import User
from tests.portal import (
    BACKENDS,
    People,
    TickingClock,
    add_people,
    bring_to,
    dispose,
    fresh_portal_url,
    make_catalogue,
    portal_services,
    queue_of,
    submit_query,
)

PODS = [("payments", "Payments"), ("platform", "Platform"), ("research", "Research")]
ADMIN_EMAILS = ["ada@example.com", "pia@example.com"]


@dataclass
class Portal:
    requests: RequestService
    users: UserService
    people: People
    pod_admin: UserRecord  # an admin who also belongs to pod payments, so may submit
    developer_2: UserRecord  # another developer of pod payments
    clock: TickingClock

    def total(self) -> int:
        return sum(self.requests.counts_by_status().values())

    def delivery(self, request: RequestRecord):
        with self.requests.sessions() as session:
            return repo.outcome_delivery(session, request.id)


def _open_portal(backend: str, make_pg_database, directory) -> Portal:
    url = fresh_portal_url(backend, make_pg_database, directory)
    clock = TickingClock()
    requests, users = portal_services(url, make_catalogue(pods=PODS), clock)
    return Portal(
        requests=requests,
        users=users,
        people=add_people(users),
        pod_admin=users.add(
            email="pia@example.com", name="Pia Pod-Admin", role="admin", pod="payments"
        ),
        developer_2=users.add(
            email="dev2@example.com", name="Dev Two", role="developer", pod="payments"
        ),
        clock=clock,
    )


@pytest.fixture(scope="module", params=BACKENDS)
def portal(request, make_pg_database, tmp_path_factory) -> Iterator[Portal]:
    """One portal per backend for the module; tests only look at their own requests."""
    opened = _open_portal(request.param, make_pg_database, tmp_path_factory.mktemp("service"))
    yield opened
    dispose(opened.requests)


@pytest.fixture(params=BACKENDS)
def empty_portal(request, make_pg_database, tmp_path) -> Iterator[Portal]:
    """A portal of its own, for tests that look at every request in the database."""
    opened = _open_portal(request.param, make_pg_database, tmp_path)
    yield opened
    dispose(opened.requests)


# --- submit ------------------------------------------------------------------------------------


def test_submitted_query_is_pending_with_pod_and_instance_names_copied(portal):
    dana = portal.people.developer
    record, analysis = portal.requests.submit(
        dana.id,
        Submission(
            target="pg-shop/shop_reporting",
            submission_type="query",
            query="  SELECT count(*) FROM orders  \n",
            comments="  for the quarterly report ",
        ),
    )

    assert record.status == "pending"
    assert (record.instance_id, record.instance_name) == ("pg-shop", "Shop PostgreSQL")
    assert record.database_name == "shop_reporting"
    assert record.database_type == "postgresql"
    assert (record.pod_id, record.pod_name) == ("payments", "Payments")
    assert record.query_content == "SELECT count(*) FROM orders"
    assert (record.script_filename, record.script_content) == (None, None)
    assert record.comments == "for the quarterly report"
    assert record.requester == dana
    assert record.approver is None
    assert analysis.statements[0].kind == "read"
    assert portal.requests.get(record.uuid) == record


def test_submitted_script_keeps_file_name_and_content(portal):
    script = "UPDATE orders SET paid = true WHERE id = 7;\nSELECT 1;\n"
    record, _ = portal.requests.submit(
        portal.people.developer.id,
        Submission(
            target="pg-shop/shop",
            submission_type="script",
            script_filename="fix.sql",
            script_content=script,
            comments="   ",
        ),
    )

    stored = portal.requests.get(record.uuid)
    assert (stored.submission_type, stored.script_filename) == ("script", "fix.sql")
    assert stored.script_content == script
    assert stored.query_content is None
    assert stored.comments is None


def test_mongodb_target_is_recorded_as_mongodb(portal):
    record = submit_query(
        portal.requests, portal.people.developer, "db.events.find({})", "mongo-events/events"
    )
    assert (record.database_type, record.instance_name) == ("mongodb", "Events MongoDB")


def test_pod_missing_from_the_catalogue_keeps_its_id_as_name(portal):
    """A pod removed from the catalogue after the user was added still yields a valid row."""
    without_payments = make_catalogue(pods=[("platform", "Platform")])
    requests = RequestService(portal.requests.sessions, without_payments)
    record = submit_query(requests, portal.people.developer)
    assert (record.pod_id, record.pod_name) == ("payments", "payments")


def _query(text: str, target: str = "pg-shop/shop") -> Submission:
    return Submission(target=target, submission_type="query", query=text)


def _script(name: str | None, content: str | None) -> Submission:
    return Submission(
        target="pg-shop/shop",
        submission_type="script",
        script_filename=name,
        script_content=content,
    )


INVALID_SUBMISSIONS: dict[str, tuple[Submission, str]] = {
    "unknown instance": (_query("SELECT 1", "pg-nowhere/shop"), "target"),
    "unknown database": (_query("SELECT 1", "pg-shop/accounts"), "target"),
    "database of another instance": (_query("SELECT 1", "pg-shop/events"), "target"),
    "target without database": (_query("SELECT 1", "pg-shop"), "target"),
    "empty target": (_query("SELECT 1", ""), "target"),
    "empty query": (_query(""), "query"),
    "blank query": (_query("  \n\t "), "query"),
    "query over 100 KB": (_query("SELECT 1 -- " + "x" * QUERY_MAX_BYTES), "query"),
    "query over 100 KB in bytes, not characters": (
        _query("SELECT '" + "é" * (QUERY_MAX_BYTES // 2 + 1) + "'"),
        "query",
    ),
    "query that does not parse": (_query("SELEC 1 FROM"), "query"),
    "script over 1 MB": (_script("big.sql", "SELECT 1;\n" + "-" * SCRIPT_MAX_BYTES), "script"),
    "script without a file": (_script(None, "SELECT 1;"), "script"),
    "script without content": (_script("fix.sql", None), "script"),
    "empty script": (_script("fix.sql", " \n "), "script"),
    "unknown submission type": (
        Submission(target="pg-shop/shop", submission_type="file", query="SELECT 1"),
        "submission_type",
    ),
    "comments too long": (
        Submission(
            target="pg-shop/shop", submission_type="query", query="SELECT 1", comments="c" * 3001
        ),
        "comments",
    ),
}


@pytest.mark.parametrize("case", sorted(INVALID_SUBMISSIONS))
def test_invalid_submission_names_the_field_and_stores_nothing(portal, case):
    submission, field = INVALID_SUBMISSIONS[case]
    before = portal.total()

    with pytest.raises(InvalidSubmission) as raised:
        portal.requests.submit(portal.people.developer.id, submission)

    assert raised.value.field == field
    assert raised.value.message
    assert portal.total() == before


def test_query_of_exactly_100_kb_is_accepted(portal):
    text = "SELECT 1 -- "
    text += "x" * (QUERY_MAX_BYTES - len(text))
    record = submit_query(portal.requests, portal.people.developer, text)
    assert len(record.query_content.encode()) == QUERY_MAX_BYTES


@pytest.mark.parametrize(
    ("who", "error"),
    [
        ("inactive_manager", NotRegistered),
        ("admin", NotAllowed),  # an admin without a pod
        ("nobody", NotRegistered),
    ],
)
def test_submit_needs_an_active_user_with_a_pod(portal, who, error):
    user_id = uuid.uuid4() if who == "nobody" else getattr(portal.people, who).id
    before = portal.total()

    with pytest.raises(error):
        portal.requests.submit(user_id, _query("SELECT 1"))

    assert portal.total() == before


# --- decisions ---------------------------------------------------------------------------------


def test_manager_of_the_pod_approves(portal):
    request = submit_query(portal.requests, portal.people.developer)

    approved = portal.requests.approve(request.uuid, portal.people.manager.id)

    assert approved.status == "approved"
    assert approved.approver == portal.people.manager
    assert approved.approver_email == portal.people.manager.email
    assert approved.approved_at == portal.clock.now
    assert approved.updated_at == portal.clock.now
    assert (approved.rejected_at, approved.rejection_reason) == (None, None)
    assert portal.requests.get(request.uuid) == approved
    assert portal.delivery(request) is None


def test_admin_of_no_pod_approves(portal):
    request = submit_query(portal.requests, portal.people.developer)
    approved = portal.requests.approve(str(request.uuid), portal.people.admin.id)
    assert (approved.status, approved.approver) == ("approved", portal.people.admin)


def test_reject_stores_the_reason_and_queues_the_outcome(portal):
    request = submit_query(portal.requests, portal.people.developer)

    rejected = portal.requests.reject(request.uuid, portal.people.admin.id, "  too broad \n")

    assert rejected.status == "rejected"
    assert rejected.rejection_reason == "too broad"
    assert rejected.rejected_at == portal.clock.now
    assert rejected.approved_at is None
    assert rejected.approver == portal.people.admin
    assert rejected.approver_email == portal.people.admin.email
    assert portal.delivery(request) is not None


@pytest.mark.parametrize("reason", ["", "   \n", None, "r" * 3001])
def test_reject_needs_a_reason(portal, reason):
    request = submit_query(portal.requests, portal.people.developer)

    with pytest.raises(InvalidSubmission) as raised:
        portal.requests.reject(request.uuid, portal.people.manager.id, reason)

    assert raised.value.field == "reason"
    assert portal.requests.get(request.uuid) == request


# (requester, decider, what the refusal says)
REFUSED = {
    "developer deciding own request": ("developer", "developer", "own request"),
    "manager deciding own request": ("manager", "manager", "own request"),
    "admin deciding own request": ("pod_admin", "pod_admin", "own request"),
    "manager of another pod": ("developer", "other_manager", "manager of pod 'payments'"),
    "developer of the same pod": ("manager", "developer_2", "developers cannot"),
    "inactive manager of the pod": ("developer", "inactive_manager", "deactivated"),
}


def _person(portal: Portal, name: str) -> UserRecord:
    return getattr(portal, name, None) or getattr(portal.people, name)


@pytest.mark.parametrize("decision", ["approve", "reject"])
@pytest.mark.parametrize("case", sorted(REFUSED))
def test_who_may_not_decide_changes_nothing(portal, case, decision):
    requester, decider, says = REFUSED[case]
    request = submit_query(portal.requests, _person(portal, requester))
    decider_id = _person(portal, decider).id

    with pytest.raises(NotAllowed, match=says):
        if decision == "approve":
            portal.requests.approve(request.uuid, decider_id)
        else:
            portal.requests.reject(request.uuid, decider_id, "no")
    with pytest.raises(NotAllowed):
        portal.requests.check_may_decide(request.uuid, decider_id)

    assert portal.requests.get(request.uuid) == request
    assert portal.delivery(request) is None


def test_approver_email_is_the_deciders_email_at_that_moment(portal):
    request = submit_query(portal.requests, portal.people.developer)
    approved = portal.requests.approve(request.uuid, portal.people.admin.id)
    with portal.requests.sessions.begin() as session:
        session.get(User, portal.people.admin.id).email = "renamed-admin@example.com"
    try:
        kept = portal.requests.get(request.uuid)
        assert kept.approver_email == approved.approver_email == portal.people.admin.email
        assert kept.approver is not None and kept.approver.email == "renamed-admin@example.com"
    finally:
        with portal.requests.sessions.begin() as session:
            session.get(User, portal.people.admin.id).email = portal.people.admin.email


def test_admin_may_decide_a_request_of_any_pod_but_not_own(portal):
    theirs = submit_query(portal.requests, portal.people.other_manager)
    assert portal.requests.check_may_decide(theirs.uuid, portal.people.admin.id) == theirs
    assert portal.requests.approve(theirs.uuid, portal.people.admin.id).status == "approved"


def test_unknown_decider_and_unknown_request(portal):
    request = submit_query(portal.requests, portal.people.developer)
    with pytest.raises(NotRegistered):
        portal.requests.approve(request.uuid, uuid.uuid4())
    with pytest.raises(NotFound):
        portal.requests.approve(uuid.uuid4(), portal.people.manager.id)
    with pytest.raises(NotFound):
        portal.requests.approve("not-a-uuid", portal.people.manager.id)
    assert portal.requests.get(request.uuid) == request


def test_second_approve_click_says_who_approved_and_changes_nothing(portal):
    request = submit_query(portal.requests, portal.people.developer)
    approved = portal.requests.approve(request.uuid, portal.people.manager.id)

    for decider in (portal.people.manager, portal.people.admin):
        with pytest.raises(InvalidTransition, match="Already approved by Maya Manager") as raised:
            portal.requests.approve(request.uuid, decider.id)
        assert raised.value.current_status == "approved"
    with pytest.raises(InvalidTransition, match="Already approved by Maya Manager"):
        portal.requests.reject(request.uuid, portal.people.admin.id, "too late")
    with pytest.raises(InvalidTransition, match="Already approved by Maya Manager"):
        portal.requests.check_may_decide(request.uuid, portal.people.admin.id)

    assert portal.requests.get(request.uuid) == approved


def test_approve_after_rejection_says_who_rejected(portal):
    request = submit_query(portal.requests, portal.people.developer)
    rejected = portal.requests.reject(request.uuid, portal.people.admin.id, "no")

    with pytest.raises(InvalidTransition, match="Already rejected by Ada Admin"):
        portal.requests.approve(request.uuid, portal.people.manager.id)

    assert portal.requests.get(request.uuid) == rejected


# --- claim, finish, recover --------------------------------------------------------------------


def test_worker_claims_the_oldest_approval_first_then_nothing(empty_portal):
    p = empty_portal
    first, second = (submit_query(p.requests, p.people.developer) for _ in range(2))
    p.requests.approve(second.uuid, p.people.manager.id)
    p.requests.approve(first.uuid, p.people.manager.id)

    claims = [queue_of(p.requests).claim_next_approved() for _ in range(3)]
    assert claims[2] is None
    claimed = [record for record, _ in claims[:2]]
    for _, lease in claims[:2]:
        lease.release()

    assert [c.uuid for c in claimed] == [second.uuid, first.uuid]
    assert all(c.status == "executing" for c in claimed[:2])
    assert claimed[1].execution_started_at == claimed[1].updated_at
    assert claimed[1].approver == p.people.manager


def test_finish_with_a_result_completes_and_keeps_the_result_file(portal):
    request = bring_to(
        portal.requests, submit_query(portal.requests, portal.people.developer), "executing"
    )

    done = queue_of(portal.requests).finish(
        request.id, result_json='{"row_count": 3}', result_file="r.csv"
    )

    assert done.status == "completed"
    assert done.result_summary() == {"row_count": 3}
    assert done.execution_completed_at == portal.clock.now
    assert done.execution_error is None
    assert portal.delivery(request).result_file == "r.csv"


def test_finish_with_an_error_fails(portal):
    request = bring_to(
        portal.requests, submit_query(portal.requests, portal.people.developer), "executing"
    )
    failed = queue_of(portal.requests).finish(request.id, error="relation does not exist")
    assert (failed.status, failed.execution_error) == ("failed", "relation does not exist")
    assert failed.execution_result is None


def test_finish_of_an_unknown_request(portal):
    with pytest.raises(NotFound):
        queue_of(portal.requests).finish(10_000_000, error="x")


def test_recovery_fails_interrupted_requests_and_touches_nothing_else(empty_portal):
    p = empty_portal
    statuses = ["pending", "approved", "rejected", "executing", "completed", "failed", "executing"]
    requests = [
        bring_to(p.requests, submit_query(p.requests, p.people.developer), s) for s in statuses
    ]
    before = {r.uuid: p.requests.get(r.uuid) for r in requests}

    recovered = queue_of(p.requests).recover_interrupted()

    interrupted = {r.uuid for r in requests if r.status == "executing"}
    assert {r.uuid for r in recovered} == interrupted
    for request in requests:
        after = p.requests.get(request.uuid)
        if request.uuid in interrupted:
            assert after.status == "failed"
            assert "interrupted" in after.execution_error
            assert after.execution_error == INTERRUPTED
            assert after.execution_started_at == before[request.uuid].execution_started_at
            assert p.delivery(request) is not None
        else:
            assert after == before[request.uuid]
    assert queue_of(p.requests).recover_interrupted() == []
    record, lease = queue_of(p.requests).claim_next_approved()
    lease.release()
    assert record.uuid == requests[1].uuid


# --- reading -----------------------------------------------------------------------------------


def test_find_by_uuid_prefix(portal):
    request = submit_query(portal.requests, portal.people.developer)
    assert portal.requests.find(str(request.uuid)[:8].upper()) == request
    assert portal.requests.find(f" {request.uuid} ") == request
    for bad in ("abc", "----", "a-b-c", "zzzzzzzz", str(uuid.uuid4())):
        with pytest.raises(NotFound):
            portal.requests.find(bad)


def test_dashes_alone_do_not_match_the_only_request(empty_portal):
    submit_query(empty_portal.requests, empty_portal.people.developer)
    for bad in ("----", "-a-b-c-"):
        with pytest.raises(NotFound):
            empty_portal.requests.find(bad)


def test_recent_rejects_an_unknown_status(portal):
    with pytest.raises(InvalidSubmission) as raised:
        portal.requests.recent(status="paused")
    assert raised.value.field == "status"


def test_recent_filters_by_status_and_requester(portal):
    request = submit_query(portal.requests, portal.developer_2)
    mine = portal.requests.recent(user_id=portal.developer_2.id, status="pending")
    assert request in mine
    assert all(r.requester == portal.developer_2 and r.status == "pending" for r in mine)


def test_approvers_are_the_active_managers_of_the_pod(portal):
    request = submit_query(portal.requests, portal.people.developer)
    assert portal.requests.approvers_for(request) == [portal.people.manager]


def test_approvers_are_the_admins_when_the_pod_has_no_manager(portal):
    rita = portal.users.add(email="rita@example.com", name="Rita", role="developer", pod="research")
    request = submit_query(portal.requests, rita)
    assert [u.email for u in portal.requests.approvers_for(request)] == ADMIN_EMAILS


def test_approvers_are_the_admins_when_the_pods_only_manager_asks(portal):
    request = submit_query(portal.requests, portal.people.other_manager)
    assert [u.email for u in portal.requests.approvers_for(request)] == ADMIN_EMAILS


def test_an_admins_own_request_goes_to_the_other_admins(portal):
    request = submit_query(portal.requests, portal.pod_admin)
    assert portal.requests.approvers_for(request) == [portal.people.manager]
    assert [u.email for u in portal.users.admins()] == ADMIN_EMAILS


def test_pending_for_shows_each_decider_what_they_may_decide(portal):
    request = submit_query(portal.requests, portal.people.developer)
    assert request in portal.requests.pending_for(portal.people.manager, limit=1000)
    assert request in portal.requests.pending_for(portal.people.admin, limit=1000)
    assert request not in portal.requests.pending_for(portal.people.other_manager, limit=1000)
    assert portal.requests.pending_for(portal.people.developer) == []
    assert portal.requests.pending_for(portal.people.inactive_manager) == []
