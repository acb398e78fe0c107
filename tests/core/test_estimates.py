"""Cost estimates against a real PostgreSQL with known table sizes, and against nx-27017."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pymongo
import pytest
from psycopg.conninfo import conninfo_to_dict
from pymongo import monitoring

from core.estimates import FAILED, NO_ESTIMATE_FOR_KIND, OK, Estimate, estimate, explain_command
from core.executors.base import Connection
from core.executors.mongo_shell import parse
from tests.conftest import free_port, pg_url_for

ORDERS_ROWS = 200_000


@pytest.fixture(scope="module")
def pg_target(pg_database: str) -> Connection:
    url = pg_url_for(pg_database)
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("CREATE TABLE pg_orders (id int PRIMARY KEY, status text, total numeric)")
        admin.execute(
            "INSERT INTO pg_orders SELECT g, CASE WHEN g %% 16 = 0 THEN 'stale' ELSE 'ok' END,"
            " g FROM generate_series(1, %s) g",
            (ORDERS_ROWS,),
        )
        admin.execute("CREATE TABLE small (id int PRIMARY KEY)")
        admin.execute("INSERT INTO small SELECT generate_series(1, 50)")
        admin.execute("ANALYZE pg_orders")
        admin.execute("ANALYZE small")
    params = conninfo_to_dict(url)
    return Connection(
        host=params.get("host", "127.0.0.1"),
        port=int(params.get("port", 5432)),
        database=params["dbname"],
        username=params.get("user"),
    )


def _pg(conn: Connection, content: str, **kwargs: Any) -> Estimate:
    return estimate(conn, "postgresql", content, "script" if ";" in content else "query", **kwargs)


def test_update_reports_rows_affected_and_the_full_scan_of_a_large_table(pg_target):
    result = _pg(pg_target, "UPDATE pg_orders SET total = 0 WHERE status = 'stale'")

    assert result.status == OK
    (statement,) = result.statements
    assert statement.affects_rows
    # 1 row in 16 is stale: the planner's guess from the statistics ANALYZE gathered.
    assert 10_000 <= statement.rows <= 15_000
    assert result.rows == statement.rows
    assert result.large_scans[0].table == "pg_orders"
    assert result.large_scans[0].rows == ORDERS_ROWS
    summary = result.summary()
    assert summary.startswith(f"~{statement.rows:,} rows affected · full scan of `pg_orders` (200K")
    with psycopg.connect(pg_url_for(pg_target.database)) as check:
        assert check.execute("SELECT count(*) FROM pg_orders WHERE total = 0").fetchone() == (0,)


def test_select_by_primary_key_uses_the_index_and_reports_no_full_scan(pg_target):
    result = _pg(pg_target, "SELECT * FROM pg_orders WHERE id = 42")

    (statement,) = result.statements
    assert statement.rows == 1 and not statement.affects_rows
    assert statement.indexes == ("pg_orders_pkey",)
    assert result.large_scans == ()
    assert result.summary().startswith("~1 row returned · cost ")


def test_a_full_scan_of_a_small_table_is_not_called_out(pg_target):
    result = _pg(pg_target, "SELECT * FROM small")

    assert result.statements[0].full_scans[0].rows == 50
    assert "full scan" not in result.summary()
    assert _pg(pg_target, "SELECT * FROM small", large_table_rows=10).large_scans[0].rows == 50


def test_delete_and_insert_estimates_count_rows_affected(pg_target):
    result = _pg(
        pg_target,
        "DELETE FROM pg_orders WHERE id <= 1000; INSERT INTO small VALUES (51), (52);",
    )

    assert [s.affects_rows for s in result.statements] == [True, True]
    assert result.statements[1].rows == 2
    # The planner's figure comes from ANALYZE's random sample: close to 1,000, never exact.
    assert 750 <= result.statements[0].rows <= 1_250
    assert result.rows == result.statements[0].rows + 2
    with psycopg.connect(pg_target_url(pg_target)) as check:
        assert check.execute("SELECT count(*) FROM pg_orders").fetchone() == (ORDERS_ROWS,)
        assert check.execute("SELECT count(*) FROM small").fetchone() == (50,)


def pg_target_url(conn: Connection) -> str:
    return pg_url_for(conn.database)


def test_ddl_gets_no_estimate_and_a_later_statement_on_its_new_table_says_why(pg_target):
    result = _pg(
        pg_target,
        "CREATE TABLE brand_new (id int); INSERT INTO brand_new VALUES (1); SELECT 1;",
    )

    first, second, third = result.statements
    assert first.note == NO_ESTIMATE_FOR_KIND
    assert second.rows is None and "brand_new" in second.note
    assert third.rows == 1
    assert result.rows is None  # one statement could not be estimated: never counts as small
    assert "1 statement not estimated" in result.summary()
    assert f"{NO_ESTIMATE_FOR_KIND} (1 statement)" in result.summary()
    with psycopg.connect(pg_target_url(pg_target)) as check:
        assert check.execute("SELECT to_regclass('brand_new')").fetchone() == (None,)


def test_a_text_that_would_make_explain_analyze_is_never_explained(pg_target):
    # EXPLAIN ANALYZE is itself a statement kind: it is not explainable, so it is skipped.
    result = _pg(pg_target, "EXPLAIN ANALYZE DELETE FROM small")

    assert result.statements[0].note == NO_ESTIMATE_FOR_KIND
    with psycopg.connect(pg_target_url(pg_target)) as check:
        assert check.execute("SELECT count(*) FROM small").fetchone() == (50,)


def test_a_plan_that_waits_too_long_times_out_and_says_so(pg_target):
    # A migration holding an exclusive lock makes even planning wait for the table.
    with psycopg.connect(pg_target_url(pg_target)) as migration:
        migration.execute("LOCK TABLE small IN ACCESS EXCLUSIVE MODE")
        result = _pg(pg_target, "SELECT * FROM small", timeout_s=0.3)

    assert result.status == FAILED
    assert result.summary() == "no estimate: timed out after 0.3 s"


def test_a_refused_login_fails_the_estimate_with_the_reason_and_no_secret(pg_target):
    conn = Connection(
        host=pg_target.host,
        port=pg_target.port,
        database=pg_target.database,
        username="no_such_role_here",
        password="s3cret-value",
    )
    result = _pg(conn, "SELECT 1")

    assert result.status == FAILED
    assert "no_such_role_here" in result.summary()
    assert "s3cret-value" not in result.summary()


def test_an_unreachable_server_fails_fast():
    conn = Connection(host="127.0.0.1", port=free_port(), database="x")
    result = estimate(conn, "postgresql", "SELECT 1")

    assert result.status == FAILED
    assert result.summary().startswith("no estimate: cannot connect to 127.0.0.1:")


# --- MongoDB -------------------------------------------------------------------------------


class _Commands(monitoring.CommandListener):
    """Records commands while `recording`; pymongo offers no way to unregister a listener."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.recording = False

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if self.recording:
            self.seen.append({"name": event.command_name, "command": dict(event.command)})

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        return None

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        return None


@pytest.fixture(scope="module")
def mongo_target(mongo_server: tuple[str, int]) -> Iterator[Connection]:
    host, port = mongo_server
    client: pymongo.MongoClient = pymongo.MongoClient(host, port)
    database = client.get_database("estimates")
    database.orders.insert_many([{"a": i, "b": i % 7} for i in range(700)])
    database.orders.create_index("a")
    yield Connection(host=host, port=port, database="estimates")
    client.drop_database("estimates")
    client.close()


def test_mongo_collection_scan_reports_the_collection_size(mongo_target):
    result = estimate(mongo_target, "mongodb", "db.orders.find({b: 3})", large_table_rows=500)

    assert result.status == OK
    assert result.statements[0].full_scans[0].rows == 700
    assert result.summary() == (
        "up to 700 documents returned · full scan of `orders` (700 documents)"
    )


def test_mongo_index_scan_names_the_index(mongo_target):
    result = estimate(mongo_target, "mongodb", "db.orders.find({a: 3})")

    assert result.statements[0].indexes and result.statements[0].full_scans == ()
    assert "index `" in result.summary()
    assert result.rows is None


def test_mongo_explain_without_a_plan_is_not_available_and_nothing_runs(mongo_target):
    result = estimate(mongo_target, "mongodb", "db.orders.deleteMany({b: 3})")

    # nx-27017 answers explain for deletes without a plan.
    assert result.status == OK
    assert result.rows is None
    assert result.summary() == "estimate not available (the server gave no plan)"
    client: pymongo.MongoClient = pymongo.MongoClient(mongo_target.host, mongo_target.port)
    with client:
        assert client.estimates.orders.count_documents({}) == 700


def test_mongo_inserts_are_counted_without_asking_the_server(mongo_target):
    result = estimate(mongo_target, "mongodb", "db.orders.insertMany([{a: 1}, {a: 2}, {a: 3}])")

    assert result.rows == 3
    assert result.summary() == "~3 documents affected"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "db.orders.find({b: 3}, {a: 1}).sort({a: -1}).limit(5)",
            {"find": "orders", "filter": {"b": 3}, "projection": {"a": 1},
             "sort": {"a": -1}, "limit": 5},
        ),
        ("db.orders.findOne({a: 1})", {"find": "orders", "filter": {"a": 1}, "limit": 1}),
        (
            "db.orders.aggregate([{$match: {a: 1}}], {hint: 'a_1'})",
            {"aggregate": "orders", "pipeline": [{"$match": {"a": 1}}], "cursor": {},
             "hint": "a_1"},
        ),
        ("db.orders.countDocuments({b: 2})", {"count": "orders", "query": {"b": 2}}),
        ("db.orders.countDocuments()", {"count": "orders", "query": {}}),
        (
            "db.orders.distinct('a', {b: 2})",
            {"distinct": "orders", "key": "a", "query": {"b": 2}},
        ),
        (
            "db.orders.updateMany({b: 2}, {$set: {c: 1}}, {upsert: true})",
            {"update": "orders",
             "updates": [{"q": {"b": 2}, "u": {"$set": {"c": 1}}, "multi": True, "upsert": True}]},
        ),
        (
            "db.orders.replaceOne({a: 1}, {a: 1, z: 2})",
            {"update": "orders", "updates": [{"q": {"a": 1}, "u": {"a": 1, "z": 2},
                                              "multi": False}]},
        ),
        (
            "db.orders.deleteOne({a: 1})",
            {"delete": "orders", "deletes": [{"q": {"a": 1}, "limit": 1}]},
        ),
        (
            "db.orders.deleteMany({a: 1})",
            {"delete": "orders", "deletes": [{"q": {"a": 1}, "limit": 0}]},
        ),
    ],
)  # fmt: skip
def test_the_explain_command_asks_only_for_the_query_plan(text, expected):
    (statement,) = parse(text)
    assert explain_command(statement) == {"explain": expected, "verbosity": "queryPlanner"}


def test_the_exact_explain_command_reaches_the_server_with_a_time_limit(mongo_target):
    listener = _Commands()
    # The estimate builds its own client: only a global listener sees its commands.
    monitoring.register(listener)
    listener.recording = True
    try:
        estimate(mongo_target, "mongodb", "db.orders.updateMany({b: 2}, {$set: {c: 1}})")
    finally:
        listener.recording = False

    explains = [c["command"] for c in listener.seen if c["name"] == "explain"]
    assert len(explains) == 1
    sent = explains[0]
    assert sent["explain"] == {
        "update": "orders",
        "updates": [{"q": {"b": 2}, "u": {"$set": {"c": 1}}, "multi": True}],
    }
    assert sent["verbosity"] == "queryPlanner"
    assert 0 < sent["maxTimeMS"] <= 2000
    assert not [c for c in listener.seen if c["name"] in ("update", "delete", "insert")]


def test_an_unreachable_mongo_fails_the_estimate_quickly():
    conn = Connection(host="127.0.0.1", port=free_port(), database="x")
    result = estimate(conn, "mongodb", "db.orders.find()", timeout_s=0.5)

    assert result.status == FAILED
    assert result.summary().startswith("no estimate: ")


@pytest.mark.parametrize(
    "statement",
    [
        "WITH gone AS (DELETE FROM small RETURNING *) SELECT count(*) FROM gone",
        "DELETE FROM small",
        "UPDATE small SET id = -id",
        "INSERT INTO small SELECT generate_series(1000, 2000)",
        "SELECT pg_sleep(30)",
        "MERGE INTO small USING (SELECT 1 AS id) s ON small.id = s.id WHEN MATCHED THEN DELETE",
        "SELECT * FROM small -- a trailing comment",
    ],
)
def test_hostile_statements_are_planned_and_never_run(pg_target, statement):
    result = _pg(pg_target, statement, timeout_s=5)

    assert result.status == OK, result.summary()
    assert result.statements[0].cost is not None
    with psycopg.connect(pg_target_url(pg_target)) as check:
        assert check.execute("SELECT count(*), sum(id) FROM small").fetchone() == (50, 1275)


def test_functions_dbquery_cannot_vouch_for_are_not_planned_before_approval(pg_target):
    # PostgreSQL folds a call of an IMMUTABLE function with constant arguments while it plans,
    # so a plain EXPLAIN would run the body of someone's own function at submit time.
    url = pg_target_url(pg_target)
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(
            "CREATE FUNCTION runs_when_planned(n int) RETURNS int IMMUTABLE LANGUAGE plpgsql"
            " AS $$ BEGIN RAISE EXCEPTION 'ran at plan time'; END $$"
        )
        with pytest.raises(psycopg.errors.RaiseException, match="ran at plan time"):
            admin.execute("EXPLAIN SELECT runs_when_planned(1)")

    result = _pg(
        pg_target,
        "SELECT runs_when_planned(1); SELECT pg_terminate_backend(pg_backend_pid());"
        " SELECT * FROM small",
    )

    assert result.status == OK
    own, server_acting, planned = result.statements
    for skipped in (own, server_acting):
        assert skipped.rows is None and skipped.note.startswith("no estimate: not planned")
    assert "ran at plan time" not in result.summary()
    assert planned.rows == 50
