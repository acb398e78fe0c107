"""Hostile PostgreSQL submissions: each is refused at submit, labelled for what it is, or
proven harmless by running it.

The cases that pass as reads are executed against a real database the way an approved request
is, as a superuser and as an ordinary role, and the target is checked unchanged afterwards:
row counts, the sequence, large objects, a sleeping session of someone else, and settings.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from core.analysis import KIND_ORDER, READ, AnalysisError
from core.analysis_sandbox import analyse_isolated
from tests.conftest import pg_url_for, wait_until
from tests.core.analysis_target import run_as_approved

LARGE_OBJECT = 424_242


@dataclass(frozen=True)
class Refused:
    because: str  # a fragment of the reason the person sees


@dataclass(frozen=True)
class Labelled:
    kind: str
    because: str  # a fragment of one of the reasons the approver sees


@dataclass(frozen=True)
class RunsAsRead:
    pass


READ_AND_HARMLESS = RunsAsRead()
SETTINGS = "executor alone owns session settings"

CASES: list[tuple[str, str, Any]] = [
    # SET TRANSACTION READ WRITE and EXPLAIN's repeated ANALYZE
    (
        "issue-set-transaction",
        "SET TRANSACTION READ WRITE; EXPLAIN (ANALYZE off, ANALYZE on) DELETE FROM t",
        Refused("SET TRANSACTION is not allowed"),
    ),
    ("set-transaction-lower", "set transaction read write", Refused("SET TRANSACTION")),
    (
        "set-session-characteristics",
        "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
        Refused(SETTINGS),
    ),
    ("begin-read-write", "BEGIN READ WRITE", Refused("BEGIN is not allowed")),
    ("commit-then-delete", "COMMIT; DELETE FROM t", Refused("COMMIT is not allowed")),
    (
        "explain-analyze-last-wins",
        "EXPLAIN (ANALYZE off, ANALYZE on) DELETE FROM t",
        Labelled("write", "EXPLAIN ANALYZE runs the statement"),
    ),
    (
        "explain-analyze-string-on",
        "EXPLAIN (ANALYZE 'on') DELETE FROM t",
        Labelled("write", "deletes from t"),
    ),
    (
        "explain-analyse-british",
        "EXPLAIN ANALYSE DELETE FROM t",
        Labelled("write", "EXPLAIN ANALYZE runs the statement"),
    ),
    (
        "explain-analyze-one",
        "EXPLAIN (VERBOSE, ANALYZE 1) UPDATE t SET note = 'x'",
        Labelled("write", "updates t"),
    ),
    (
        "explain-analyze-off-last",
        "EXPLAIN (ANALYZE on, ANALYZE off) DELETE FROM t",
        READ_AND_HARMLESS,
    ),
    ("explain-plain-delete", "EXPLAIN DELETE FROM t", READ_AND_HARMLESS),
    ("explain-for-update", "EXPLAIN SELECT * FROM t FOR UPDATE", READ_AND_HARMLESS),
    # set_config in any form, SET and RESET of anything
    (
        "issue-set-config-cast",
        "SELECT set_config('statement_timeout'::text, '0', true); SELECT pg_sleep(6)",
        Refused("set_config() is not allowed"),
    ),
    (
        "set-config-concatenated",
        "SELECT set_config('statement_' || 'timeout', '0', true)",
        Refused(SETTINGS),
    ),
    (
        "set-config-quoted",
        "SELECT \"set_config\"('statement_timeout', '0', false)",
        Refused(SETTINGS),
    ),
    (
        "set-config-upper-qualified",
        "SELECT PG_CATALOG.SET_CONFIG('statement_timeout', '0', false)",
        Refused(SETTINGS),
    ),
    (
        "set-config-in-subquery",
        "SELECT * FROM (SELECT set_config(name, '0', true) FROM pg_settings "
        "WHERE name = 'statement_timeout') s",
        Refused(SETTINGS),
    ),
    (
        "set-config-with-comments",
        "SELECT 1 /* set_config */, set_config(/* x */ 'work_mem', '1GB', true) -- y",
        Refused(SETTINGS),
    ),
    (
        "set-config-dollar-quoted",
        "SELECT set_config($$statement_timeout$$, $q$0$q$, true)",
        Refused(SETTINGS),
    ),
    (
        "set-config-in-cte",
        "WITH s AS (SELECT set_config('transaction_read_only', 'off', true)) SELECT * FROM s",
        Refused(SETTINGS),
    ),
    (
        "set-config-in-order-by",
        "SELECT 1 ORDER BY set_config('statement_timeout', '0', true)",
        Refused(SETTINGS),
    ),
    (
        "set-config-from-values",
        "SELECT set_config(c.k, c.v, true) FROM (VALUES ('statement_timeout', '0')) c(k, v)",
        Refused(SETTINGS),
    ),
    (
        "set-config-explained",
        "EXPLAIN SELECT set_config('statement_timeout', '0', true)",
        Refused(SETTINGS),
    ),
    (
        "set-config-prepared",
        "PREPARE p AS SELECT set_config('a.b', 'c', false)",
        Refused(SETTINGS),
    ),
    ("set-timeout", "SET statement_timeout = 0; SELECT pg_sleep(6)", Refused("statement_timeout")),
    ("set-local-timeout", "SET LOCAL statement_timeout TO 0", Refused("SET statement_timeout")),
    ("reset-timeout", "RESET statement_timeout", Refused("RESET statement_timeout")),
    ("set-role", "SET ROLE postgres", Refused("SET ROLE is not allowed")),
    ("set-session-authorization", "SET SESSION AUTHORIZATION postgres", Refused("AUTHORIZATION")),
    ("reset-all", "RESET ALL", Refused("RESET ALL is not allowed")),
    ("set-search-path", "set search_path = evil, pg_catalog", Refused("SET search_path")),
    ("set-default-read-only", "SET default_transaction_read_only = off", Refused("is not allowed")),
    ("copy-to-program", "COPY (SELECT 1) TO PROGRAM 'id'", Refused("COPY is not allowed")),
    ("alter-system", "ALTER SYSTEM SET statement_timeout = 0", Refused("ALTER SYSTEM")),
    # sequences and user functions
    ("setval", "SELECT setval('seq', 1000)", Labelled("write", "calls setval()")),
    ("nextval-qualified", "SELECT pg_catalog.nextval('seq')", Labelled("write", "nextval()")),
    (
        "user-function",
        "SELECT my_writing_function()",
        Labelled("write", "calls my_writing_function()"),
    ),
    (
        "user-function-qualified",
        "SELECT public.my_writing_function()",
        Labelled("write", "calls public.my_writing_function()"),
    ),
    (
        "user-function-quoted",
        'SELECT "my_writing_function"()',
        Labelled("write", "calls my_writing_function()"),
    ),
    (
        "user-function-shadowing-a-built-in-schema",
        "SELECT public.lower('x')",
        Labelled("write", "calls public.lower()"),
    ),
    ("txid-current", "SELECT txid_current()", Labelled("write", "assigns a transaction id")),
    # large objects
    ("issue-lo-unlink", f"SELECT lo_unlink({LARGE_OBJECT})", Labelled("admin", "lo_unlink()")),
    ("issue-lo-from-bytea", "SELECT lo_from_bytea(0, 'x')", Labelled("admin", "large objects")),
    (
        "lo-unlink-upper-qualified",
        f"SELECT PG_CATALOG.LO_UNLINK({LARGE_OBJECT})",
        Labelled("admin", "pg_catalog.lo_unlink()"),
    ),
    ("lo-creat-cast", "SELECT CAST(lo_creat(-1) AS text)", Labelled("admin", "lo_creat()")),
    ("lo-import", "SELECT lo_import('/etc/hostname')", Labelled("admin", "file on the database")),
    (
        "lo-unlink-lateral",
        "SELECT * FROM t, LATERAL (SELECT lo_unlink(t.id)) x",
        Labelled("admin", "lo_unlink()"),
    ),
    # other sessions and the server
    (
        "issue-terminate-backend",
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'victim'",
        Labelled("admin", "calls pg_terminate_backend(), which ends another session"),
    ),
    (
        "terminate-upper",
        "select PG_TERMINATE_BACKEND(1)",
        Labelled("admin", "pg_terminate_backend()"),
    ),
    (
        "terminate-quoted-upper",
        'SELECT "PG_TERMINATE_BACKEND"(1)',
        Labelled("admin", "PG_TERMINATE_BACKEND()"),
    ),
    (
        "terminate-spaced-commented",
        "SELECT /* harmless */ pg_catalog . pg_terminate_backend ( 1 )",
        Labelled("admin", "pg_terminate_backend()"),
    ),
    (
        "terminate-in-cte",
        "WITH x AS (SELECT pg_terminate_backend(1)) SELECT 1",
        Labelled("admin", "pg_terminate_backend()"),
    ),
    (
        "cancel-in-where",
        "SELECT count(*) FROM pg_stat_activity WHERE pg_cancel_backend(pid)",
        Labelled("admin", "pg_cancel_backend()"),
    ),
    (
        "cancel-in-order-by",
        "SELECT 1 ORDER BY pg_cancel_backend(1)",
        Labelled("admin", "pg_cancel_backend()"),
    ),
    (
        "terminate-in-column-default",
        "CREATE TABLE trap (a int DEFAULT pg_terminate_backend(1)::int)",
        Labelled("admin", "pg_terminate_backend()"),
    ),
    (
        "terminate-in-cursor",
        "DECLARE c CURSOR FOR SELECT pg_terminate_backend(1)",
        Labelled("admin", "pg_terminate_backend()"),
    ),
    (
        "issue-read-file",
        "SELECT pg_read_file('/etc/hostname')",
        Labelled("admin", "reads files on the database server"),
    ),
    (
        "read-binary-file-cast",
        "SELECT pg_read_binary_file('/etc/hostname')::text",
        Labelled("admin", "pg_read_binary_file()"),
    ),
    (
        "read-file-concatenated",
        "SELECT 'x' || pg_read_file('/etc/hostname')",
        Labelled("admin", "pg_read_file()"),
    ),
    ("ls-dir-subquery", "SELECT (SELECT pg_ls_dir('.') LIMIT 1)", Labelled("admin", "pg_ls_dir()")),
    ("reload-conf", "SELECT pg_reload_conf()", Labelled("admin", "server's configuration")),
    ("advisory-lock", "SELECT pg_advisory_lock(1)", Labelled("admin", "advisory locks")),
    ("stat-reset", "SELECT pg_stat_reset()", Labelled("admin", "resets server statistics")),
    ("notify", "SELECT pg_notify('ch', 'x')", Labelled("write", "notification")),
    (
        "query-to-xml",
        "SELECT query_to_xml('SELECT pg_terminate_backend(1)', true, true, '')",
        Labelled("admin", "runs SQL text"),
    ),
    (
        "dblink",
        "SELECT dblink_exec('dbname=other', 'DELETE FROM t')",
        Labelled("admin", "connects to another database"),
    ),
    ("load-library", "LOAD 'auto_explain'", Labelled("admin", "LOAD loads a library")),
    (
        "do-block",
        "DO $$ BEGIN PERFORM set_config('statement_timeout', '0', true); END $$",
        Labelled("write", "DO runs procedural code"),
    ),
    # row locks and data-modifying sub-statements
    ("for-update", "SELECT * FROM t FOR UPDATE", Labelled("write", "FOR UPDATE takes row locks")),
    (
        "for-share-in-subquery",
        "SELECT * FROM (SELECT * FROM t FOR SHARE) s",
        Labelled("write", "FOR SHARE takes row locks"),
    ),
    (
        "delete-in-cte",
        "WITH gone AS (DELETE FROM t RETURNING *) SELECT count(*) FROM gone",
        Labelled("write", "deletes from t"),
    ),
    # names of dangerous functions where nothing calls them
    ("name-in-string", "SELECT 'SELECT pg_terminate_backend(1)'", READ_AND_HARMLESS),
    ("name-in-dollar-quote", f"SELECT $$lo_unlink({LARGE_OBJECT})$$", READ_AND_HARMLESS),
    ("name-in-comment", "SELECT 1 -- ; SELECT pg_terminate_backend(1)", READ_AND_HARMLESS),
    ("name-as-argument", "SELECT lower('SET_CONFIG'), upper('set_config')", READ_AND_HARMLESS),
    ("current-setting", "SELECT current_setting('statement_timeout')", READ_AND_HARMLESS),
    ("show-timeout", "SHOW statement_timeout", READ_AND_HARMLESS),
    (
        "who-is-connected",
        "SELECT pid, application_name FROM pg_stat_activity WHERE application_name = 'victim'",
        READ_AND_HARMLESS,
    ),
    (
        "large-objects-listed",
        "SELECT count(*) FROM pg_largeobject_metadata",
        READ_AND_HARMLESS,
    ),
    ("sequence-read", "SELECT last_value FROM seq", READ_AND_HARMLESS),
    ("short-sleep", "SELECT pg_sleep(0.05)", READ_AND_HARMLESS),
]


def case_params(outcome_type: type) -> list[Any]:
    return [
        pytest.param(sql, outcome, id=name)
        for name, sql, outcome in CASES
        if isinstance(outcome, outcome_type)
    ]


def test_the_table_covers_every_outcome() -> None:
    counts = Counter(type(outcome).__name__ for _, _, outcome in CASES)
    assert len(CASES) >= 45
    assert len({name for name, _, _ in CASES}) == len(CASES)
    assert counts["Refused"] >= 15 and counts["Labelled"] >= 15 and counts["RunsAsRead"] >= 10


@pytest.mark.parametrize(("sql", "outcome"), case_params(Refused))
def test_refused_at_submit(sql: str, outcome: Refused) -> None:
    with pytest.raises(AnalysisError) as caught:
        analyse_isolated("postgresql", sql, "script")
    assert outcome.because in caught.value.message


@pytest.mark.parametrize(("sql", "outcome"), case_params(Labelled))
def test_labelled_for_what_it_is(sql: str, outcome: Labelled) -> None:
    analysis = analyse_isolated("postgresql", sql, "script")
    assert analysis.kind == outcome.kind, analysis.reasons
    assert not analysis.read_only
    assert any(outcome.because in reason for reason in analysis.reasons), analysis.reasons


# --- running the reads ----------------------------------------------------------------------


@dataclass
class Target:
    url: str
    reader: str  # an ordinary role, as an application's: it may read and write t, nothing more


@pytest.fixture(scope="module")
def target(pg_database: str) -> Iterator[Target]:
    url = pg_url_for(pg_database)
    reader = f"reader_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE t (id int PRIMARY KEY, note text);"
            "INSERT INTO t SELECT g, 'row ' || g FROM generate_series(1, 5) g;"
            "CREATE SEQUENCE seq;"
            "SELECT nextval('seq');"
            f"SELECT lo_create({LARGE_OBJECT});"
            "CREATE FUNCTION my_writing_function() RETURNS int LANGUAGE sql "
            "AS 'INSERT INTO t VALUES (100, ''written'') RETURNING id';"
        )
        conn.execute(f"CREATE ROLE {reader} LOGIN")
        conn.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON t TO {reader}")
        conn.execute(f"GRANT SELECT, USAGE, UPDATE ON seq TO {reader}")
    try:
        yield Target(url, reader)
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP OWNED BY {reader}")
            conn.execute(f"DROP ROLE {reader}")


@pytest.fixture(scope="module")
def victim(target: Target) -> Iterator[int]:
    """Someone else's session, busy in a long query for the whole module."""
    conn = psycopg.connect(target.url, autocommit=True, application_name="victim")
    pid = conn.info.backend_pid
    ended = threading.Event()

    def sleep() -> None:
        try:
            conn.execute("SELECT pg_sleep(600)")
        except psycopg.Error:
            pass
        finally:
            ended.set()

    thread = threading.Thread(target=sleep, daemon=True)
    thread.start()
    wait_until(lambda: victim_state(target.url, pid) == "active", what="the victim's query")
    try:
        yield pid
    finally:
        with psycopg.connect(target.url, autocommit=True) as admin:
            admin.execute("SELECT pg_cancel_backend(%s)", (pid,))
        ended.wait(10)
        conn.close()


def victim_state(url: str, pid: int) -> str | None:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT state FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
    return row[0] if row else None


def snapshot(url: str, victim_pid: int) -> dict[str, Any]:
    """What a harmless request must leave as it was."""
    with psycopg.connect(url, autocommit=True) as conn:

        def one(sql: str) -> Any:
            row = conn.execute(sql).fetchone()
            return row[0] if row else None

        return {
            "rows": one("SELECT count(*) FROM t"),
            "content": one("SELECT md5(string_agg(id || note, ',' ORDER BY id)) FROM t"),
            "sequence": one("SELECT last_value FROM seq"),
            "large objects": one("SELECT array_agg(oid ORDER BY oid) FROM pg_largeobject_metadata"),
            "role settings": one("SELECT count(*) FROM pg_db_role_setting"),
            "statement_timeout": one("SHOW statement_timeout"),
            "victim": one(f"SELECT state FROM pg_stat_activity WHERE pid = {victim_pid}"),
        }


@pytest.mark.parametrize("as_role", ["superuser", "ordinary role"])
@pytest.mark.parametrize(("sql", "outcome"), case_params(RunsAsRead))
def test_reads_run_and_leave_the_target_unchanged(
    target: Target, victim: int, tmp_path: Path, sql: str, outcome: RunsAsRead, as_role: str
) -> None:
    analysis = analyse_isolated("postgresql", sql, "script")
    assert analysis.kind == READ and analysis.reasons == ()
    before = snapshot(target.url, victim)
    assert before["victim"] == "active"
    username = "postgres" if as_role == "superuser" else target.reader
    result = run_as_approved(target.url, sql, tmp_path, "script", username=username)
    assert result.statements
    assert snapshot(target.url, victim) == before


def test_kinds_are_ordered_from_read_to_admin() -> None:
    assert KIND_ORDER == ("read", "write", "ddl", "admin")
