"""A `serve` killed with SIGKILL mid-query: on restart the request is failed, never re-run."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import psycopg

from tests.bot.conftest import SlackSender, query_form
from tests.bot.fakeslack import FakeSlack
from tests.bot.serve_process import add_users, dbquery, serve_env, start_serve
from tests.conftest import pg_url_for, wait_until


def request_uuid_from_approval_dm(fake: FakeSlack, marker: str) -> str:
    [dm] = fake.wait_for(
        "chat.postMessage",
        lambda c: c.args.get("channel") == "DU0MO" and marker in json.dumps(c.args),
    )
    return next(
        element["value"]
        for block in dm.args["blocks"]
        if block["type"] == "actions"
        for element in block["elements"]
        if element["action_id"] == "approve_request"
    )


def backends_of(target_db: str, request_uuid: str, since: datetime | None = None) -> list:
    with psycopg.connect(pg_url_for(target_db), autocommit=True) as conn:
        return conn.execute(
            "SELECT pid, state FROM pg_stat_activity WHERE application_name = %s"
            " AND (%s::timestamptz IS NULL OR backend_start > %s)",
            (f"dbquery/{request_uuid}", since, since),
        ).fetchall()


def test_serve_killed_mid_query_fails_the_request_on_restart_and_never_reruns_it(
    tmp_path, fake_slack: FakeSlack, target_database: str, make_pg_database
):
    portal_db = make_pg_database()
    env = serve_env(tmp_path, pg_url_for(portal_db, "psycopg"), target_database, fake_slack.api_url)
    assert dbquery(env, "migrate").returncode == 0
    add_users(env, ("ann@example.com", "developer", "U0ANN"), ("mo@example.com", "manager", "U0MO"))
    log = tmp_path / "serve.log"
    marker = f"crash-{time.time_ns()}"
    # One statement that writes and then runs long: if it ever committed, the row would show it.
    slow_write = (
        f"WITH w AS (INSERT INTO applied (note) VALUES ('{marker}') RETURNING id) "
        "SELECT pg_sleep(15), (SELECT count(*) FROM w)"
    )

    first = start_serve(env, log)
    try:
        sender = SlackSender(first.url, fake_slack)
        form = query_form(f"pg-shop/{target_database}", slow_write, comments=marker)
        assert sender.submit_view("U0ANN", "submit_request", form).status_code == 200
        request_uuid = request_uuid_from_approval_dm(fake_slack, marker)
        assert sender.click("U0MO", "approve_request", request_uuid)[0].status_code == 200
        wait_until(
            lambda: [b for b in backends_of(target_database, request_uuid) if b[1] == "active"],
            timeout=30,
            what="the query to be running on the target",
        )
    finally:
        first.stop()  # SIGKILL: no shutdown hook runs
    assert first.proc.returncode == -9

    restarted_at = datetime.now(UTC)
    second = start_serve(env, log)
    try:
        with psycopg.connect(pg_url_for(portal_db), autocommit=True) as portal:

            def row():
                return portal.execute(
                    "SELECT status, execution_error FROM query_requests WHERE uuid = %s",
                    (request_uuid,),
                ).fetchone()

            status, error = wait_until(
                lambda: (r := row()) and r[0] == "failed" and r, timeout=30, what="recovery"
            )
        assert error.startswith("interrupted")
        fake_slack.wait_for(
            "chat.postMessage",
            lambda c: (
                c.args.get("thread_ts") is not None
                and c.args.get("channel") == "DU0ANN"
                and "interrupted" in json.dumps(c.args)
            ),
        )

        # The restarted worker is dispatching (a new request runs to completion) ...
        sender = SlackSender(second.url, fake_slack)
        after = f"after-{marker}"
        form = query_form(f"pg-shop/{target_database}", "SELECT 42 AS answer", comments=after)
        assert sender.submit_view("U0ANN", "submit_request", form).status_code == 200
        next_uuid = request_uuid_from_approval_dm(fake_slack, after)
        assert sender.click("U0MO", "approve_request", next_uuid)[0].status_code == 200
        fake_slack.wait_for(
            "chat.postMessage",
            lambda c: c.args.get("thread_ts") is not None and "42" in json.dumps(c.args),
            timeout=30,
        )
        # ... and it never started the interrupted one again.
        assert backends_of(target_database, request_uuid, since=restarted_at) == []
        with psycopg.connect(pg_url_for(portal_db)) as portal:
            assert portal.execute(
                "SELECT status FROM query_requests WHERE uuid = %s", (request_uuid,)
            ).fetchone() == ("failed",)
    finally:
        second.stop()
        with psycopg.connect(pg_url_for(target_database), autocommit=True) as conn:
            # The killed process's query may still be sleeping on the server; end it.
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = %s",
                (f"dbquery/{request_uuid}",),
            )
            assert conn.execute(
                "SELECT count(*) FROM applied WHERE note = %s", (marker,)
            ).fetchone() == (0,)
