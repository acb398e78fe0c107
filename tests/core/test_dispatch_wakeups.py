"""Wake-ups of the dispatcher coalesce: a burst of approvals neither floods the log nor runs a
request twice."""

from __future__ import annotations

import logging
import threading

import psycopg
import pytest

from core.jobs import Worker
from db.migrate import migrate
from db.session import make_engine
from tests.conftest import pg_url_for, wait_until
from tests.core.test_worker import RecordingNotifier, make_core, people, submit_approved

REQUESTS = 40
WAKERS = 8
WAKES_EACH = 500


@pytest.fixture
def target_db(make_pg_database) -> str:
    name = make_pg_database()
    with psycopg.connect(pg_url_for(name), autocommit=True) as conn:
        conn.execute("CREATE TABLE executions (tag integer NOT NULL)")
    return name


@pytest.fixture
def portal_url(make_pg_database) -> str:
    url = pg_url_for(make_pg_database(), "psycopg")
    migrate(make_engine(url))
    return url


def test_a_burst_of_wake_ups_logs_nothing_and_runs_each_request_once(
    portal_url, target_db, tmp_path, monkeypatch, caplog: pytest.LogCaptureFixture
):
    core = make_core(portal_url, target_db, tmp_path, monkeypatch, workers=2)
    dev, boss = people(core)
    notifier = RecordingNotifier(core)
    worker = Worker(core, notifier)
    caplog.set_level(logging.WARNING)
    worker.start()
    try:

        def approve_and_wake(first: int) -> None:
            for n in range(first, REQUESTS, WAKERS):
                submit_approved(core, dev, boss, f"INSERT INTO executions (tag) VALUES ({n})")
                worker.wake()
            for _ in range(WAKES_EACH):
                worker.wake()

        threads = [threading.Thread(target=approve_and_wake, args=(i,)) for i in range(WAKERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wait_until(
            lambda: core.requests.counts_by_status().get("completed", 0) == REQUESTS,
            timeout=60,
            what=f"{REQUESTS} completed requests",
        )
    finally:
        worker.shutdown()

    with psycopg.connect(pg_url_for(target_db)) as conn:
        total, distinct = conn.execute(
            "SELECT count(*), count(DISTINCT tag) FROM executions"
        ).fetchone()
    assert (total, distinct) == (REQUESTS, REQUESTS)
    assert len(set(notifier.started)) == len(notifier.started) == REQUESTS
    assert not [r.getMessage() for r in caplog.records if "running instances" in r.getMessage()]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
