"""The worker on a PostgreSQL portal: every approved request runs exactly once, across processes."""

from __future__ import annotations

import json
import threading
import uuid

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from core.catalogue import Catalogue, Instance, Pod
from core.events import Event, EventKind, LifecycleEvent
from core.jobs import Worker
from core.lifecycle import Status
from core.requests import Submission
from core.settings import Settings
from core.wiring import Core, build_core
from db.migrate import migrate
from db.session import make_engine
from tests.conftest import PG_URL, pg_url_for, wait_until


class RecordingNotifier:
    """Collects the outcomes the worker delivers and the events the cores it listens to
    publish; thread-safe."""

    def __init__(self, *cores: Core) -> None:
        self.lock = threading.Lock()
        self.started: list[uuid.UUID] = []
        self.outcomes: list[tuple[uuid.UUID, str]] = []
        self.reminders: list[tuple[uuid.UUID, str, int]] = []
        self.fail_deliveries = 0
        for core in cores:
            core.events.subscribe("recorder", self.on_event)

    def on_event(self, event: Event) -> None:
        if not isinstance(event, LifecycleEvent):
            return
        with self.lock:
            if event.kind == EventKind.STARTED:
                self.started.append(event.request.uuid)
            elif event.kind == EventKind.REMINDED:
                self.reminders.append((event.request.uuid, "reminded", len(event.approvers)))
            elif event.kind == EventKind.ESCALATED:
                self.reminders.append((event.request.uuid, "escalated", len(event.admins)))

    def deliver_outcome(self, request, result_file) -> None:
        with self.lock:
            if self.fail_deliveries:
                self.fail_deliveries -= 1
                raise ConnectionError("slack is down")
            self.outcomes.append((request.uuid, request.status))


@pytest.fixture
def target_db(make_pg_database) -> str:
    name = make_pg_database()
    with psycopg.connect(pg_url_for(name), autocommit=True) as conn:
        conn.execute("CREATE TABLE executions (tag integer NOT NULL)")
    return name


def make_core(portal_url: str, target: str, tmp_path, monkeypatch, workers: int = 4) -> Core:
    server = conninfo_to_dict(PG_URL)
    monkeypatch.setenv(
        "DBQUERY_TEST_TARGET_SECRET",
        json.dumps(
            {"username": server.get("user", "postgres"), "password": server.get("password", "")}
        ),
    )
    catalogue = Catalogue(
        pods=[Pod(id="payments", name="Payments")],
        instances=[
            Instance(
                id="pg-target",
                name="Target PG",
                type="postgresql",
                host=server.get("host", "127.0.0.1"),
                port=int(server.get("port", 5432)),
                databases=[target],
                secret="env:DBQUERY_TEST_TARGET_SECRET",
            )
        ],
    )
    settings = Settings(
        DBQUERY_DATABASE_URL=portal_url,
        DBQUERY_RESULTS_DIR=tmp_path / "results",
        DBQUERY_WORKERS=workers,
    )
    return build_core(settings, catalogue)


@pytest.fixture
def portal_url(make_pg_database) -> str:
    url = pg_url_for(make_pg_database(), "psycopg")
    migrate(make_engine(url))
    return url


def people(core: Core):
    dev = core.users.add(email="dev@example.com", name="Dev", role="developer", pod="payments")
    boss = core.users.add(email="boss@example.com", name="Boss", role="manager", pod="payments")
    return dev, boss


def submit_approved(core: Core, dev, boss, sql: str):
    request, _ = core.requests.submit(
        dev.id,
        Submission(
            target=f"pg-target/{core.catalogue.instances[0].databases[0]}",
            submission_type="query",
            query=sql,
        ),
    )
    return core.requests.approve(request.uuid, boss.id)


def test_hundred_approved_requests_on_two_worker_pools_each_run_exactly_once(
    portal_url, target_db, tmp_path, monkeypatch
):
    cores = [make_core(portal_url, target_db, tmp_path, monkeypatch) for _ in range(2)]
    dev, boss = people(cores[0])
    for n in range(100):
        submit_approved(cores[0], dev, boss, f"INSERT INTO executions (tag) VALUES ({n})")

    notifier = RecordingNotifier(*cores)
    finished_by: list[list[uuid.UUID]] = [[], []]
    workers = [
        Worker(core, notifier, on_finished=lambda r, _s, i=i: finished_by[i].append(r.uuid))
        for i, core in enumerate(cores)
    ]
    for worker in workers:
        worker.start()
    try:
        wait_until(
            lambda: cores[0].requests.counts_by_status().get("completed", 0) == 100,
            timeout=120,
            what="100 completed requests",
        )
    finally:
        for worker in workers:
            worker.shutdown()

    with psycopg.connect(pg_url_for(target_db)) as conn:
        total, distinct = conn.execute(
            "SELECT count(*), count(DISTINCT tag) FROM executions"
        ).fetchone()
    assert (total, distinct) == (100, 100)
    assert len(finished_by[0]) + len(finished_by[1]) == 100
    assert not set(finished_by[0]) & set(finished_by[1])
    assert len(set(notifier.started)) == len(notifier.started) == 100
    assert sorted(status for _, status in notifier.outcomes) == ["completed"] * 100


def test_failed_outcome_post_is_retried_and_posted_once(
    portal_url, target_db, tmp_path, monkeypatch
):
    core = make_core(portal_url, target_db, tmp_path, monkeypatch, workers=1)
    dev, boss = people(core)
    request = submit_approved(core, dev, boss, "SELECT count(*) FROM executions")
    notifier = RecordingNotifier(core)
    notifier.fail_deliveries = 1
    worker = Worker(core, notifier)
    assert worker.dispatch() == 1
    assert worker.wait_idle(timeout=30)
    assert notifier.outcomes == []
    assert core.requests.get(request.uuid).status == Status.COMPLETED

    # The failed attempt holds its lease: an immediate retry does not post twice ...
    assert worker.retry_deliveries() == 0
    # ... and once the lease has passed, the retry posts it.
    core.requests.clock = lambda: _later(minutes=2)
    assert worker.retry_deliveries() == 1
    assert worker.retry_deliveries() == 0
    assert notifier.outcomes == [(request.uuid, "completed")]
    worker.shutdown()


def test_failing_query_is_recorded_with_the_database_message(
    portal_url, target_db, tmp_path, monkeypatch
):
    core = make_core(portal_url, target_db, tmp_path, monkeypatch, workers=1)
    dev, boss = people(core)
    request = submit_approved(core, dev, boss, "SELECT * FROM no_such_table")
    notifier = RecordingNotifier(core)
    worker = Worker(core, notifier)
    worker.dispatch()
    assert worker.wait_idle(timeout=30)
    worker.shutdown()
    done = core.requests.get(request.uuid)
    assert done.status == Status.FAILED
    assert 'relation "no_such_table" does not exist' in done.execution_error
    assert notifier.outcomes == [(request.uuid, "failed")]


def test_reminders_then_escalation_once(portal_url, target_db, tmp_path, monkeypatch):
    core = make_core(portal_url, target_db, tmp_path, monkeypatch)
    dev, boss = people(core)
    core.users.add(email="root@example.com", name="Root", role="admin", pod=None)
    request, _ = core.requests.submit(
        dev.id,
        Submission(target=f"pg-target/{target_db}", submission_type="query", query="SELECT 1"),
    )
    notifier = RecordingNotifier(core)
    worker = Worker(core, notifier)

    assert worker.send_reminders() == 0  # too young
    core.requests.clock = lambda: _later(minutes=31)
    assert worker.send_reminders() == 1
    assert worker.send_reminders() == 0  # reminded just now
    core.requests.clock = lambda: _later(minutes=125)
    assert worker.send_reminders() == 1
    core.requests.clock = lambda: _later(minutes=130)
    assert worker.send_reminders() == 0
    assert notifier.reminders == [
        (request.uuid, "reminded", 1),
        (request.uuid, "reminded", 1),
        (request.uuid, "escalated", 1),
    ]
    worker.shutdown()


def _later(**delta):
    from datetime import UTC, datetime, timedelta

    return datetime.now(UTC) + timedelta(**delta)


def test_recovery_spares_what_a_live_replica_is_executing(
    portal_url, target_db, tmp_path, monkeypatch
):
    running, restarted = (make_core(portal_url, target_db, tmp_path, monkeypatch) for _ in "ab")
    dev, boss = people(running)
    request = submit_approved(running, dev, boss, "SELECT 1")
    claimed, lease = running.queue.claim_next_approved()
    assert claimed.uuid == request.uuid

    # Another replica starting up must not fail a request whose executor is alive ...
    assert restarted.queue.recover_interrupted() == []
    assert restarted.requests.get(request.uuid).status == Status.EXECUTING

    # ... but once that executor's process is gone (its lease freed), it is failed, not re-run.
    lease.connection.invalidate()  # the connection dies as with a killed process
    lease.connection = None
    recovered_now: list = []
    wait_until(
        lambda: recovered_now.extend(restarted.queue.recover_interrupted()) or recovered_now,
        timeout=10,
        what="the server to end the dead session and free its lease",
    )
    [recovered] = recovered_now
    assert recovered.uuid == request.uuid
    assert recovered.status == Status.FAILED
    assert recovered.execution_error.startswith("interrupted")
    assert restarted.queue.claim_next_approved() is None
