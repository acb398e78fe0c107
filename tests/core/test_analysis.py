"""Submit-time analysis: classification, tables, warnings, refusals and error positions."""

from __future__ import annotations

import pytest

from core.analysis import (
    MULTIPLE_STATEMENTS_WARNING,
    Analysis,
    AnalysisError,
    StatementInfo,
    analyse,
)
from core.executors import mongo_shell


def pg(content: str, submission_type: str = "query") -> Analysis:
    return analyse("postgresql", content, submission_type)


# --- classification -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ("SELECT * FROM orders", "read"),
        ("select 1", "read"),
        ("VALUES (1), (2)", "read"),
        ("TABLE orders", "read"),
        ("SHOW statement_timeout", "read"),
        ("EXPLAIN SELECT * FROM orders", "read"),
        ("EXPLAIN DELETE FROM orders", "read"),
        ("EXPLAIN (ANALYZE false) DELETE FROM orders", "read"),
        ("EXPLAIN ANALYZE SELECT * FROM orders", "read"),
        ("EXPLAIN ANALYZE DELETE FROM orders WHERE id = 1", "write"),
        ("EXPLAIN (ANALYZE, BUFFERS) UPDATE orders SET a = 1 WHERE id = 2", "write"),
        ("EXPLAIN ANALYZE CREATE TABLE x AS SELECT 1", "ddl"),
        ("WITH recent AS (SELECT * FROM orders) SELECT * FROM recent", "read"),
        ("SELECT * FROM orders FOR UPDATE", "write"),
        ("SELECT * FROM orders FOR SHARE SKIP LOCKED", "write"),
        ("SELECT * FROM (SELECT * FROM orders FOR UPDATE) o", "write"),
        ("SELECT * INTO archive FROM orders", "write"),
        ("WITH gone AS (DELETE FROM orders RETURNING *) SELECT count(*) FROM gone", "write"),
        ("INSERT INTO orders VALUES (1)", "write"),
        ("UPDATE orders SET total = 0 WHERE id = 1", "write"),
        ("DELETE FROM orders WHERE id = 1", "write"),
        (
            "MERGE INTO orders o USING staged s ON o.id = s.id "
            "WHEN MATCHED THEN UPDATE SET total = s.total",
            "write",
        ),
        ("CALL refresh_totals()", "write"),
        ("DO $$ BEGIN PERFORM 1; END $$", "write"),
        ("NOTIFY orders_changed", "write"),
        ("LISTEN orders_changed", "read"),
        ("LOCK TABLE orders IN SHARE MODE", "write"),
        ("ANALYZE orders", "write"),
        ("CREATE TABLE t (id int)", "ddl"),
        ("CREATE TABLE t AS SELECT 1", "ddl"),
        ("CREATE INDEX orders_total ON orders (total)", "ddl"),
        ("CREATE VIEW v AS SELECT 1", "ddl"),
        ("ALTER TABLE orders ADD COLUMN note text", "ddl"),
        ("DROP TABLE orders", "ddl"),
        ("TRUNCATE orders", "ddl"),
        ("GRANT SELECT ON orders TO analyst", "ddl"),
        ("REVOKE SELECT ON orders FROM analyst", "ddl"),
        ("COMMENT ON TABLE orders IS 'all orders'", "ddl"),
        ("CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'", "ddl"),
        ("REFRESH MATERIALIZED VIEW totals", "ddl"),
        ("ALTER TABLE orders RENAME TO old_orders", "ddl"),
        ("REINDEX TABLE orders", "ddl"),
        ("CLUSTER orders USING orders_pkey", "ddl"),
        ("PREPARE q AS SELECT 1", "read"),
        ("PREPARE d AS DELETE FROM orders", "write"),
        ("EXECUTE q", "write"),
        ("DECLARE c CURSOR FOR SELECT * FROM orders", "read"),
    ],
)
def test_statement_kind(sql: str, kind: str) -> None:
    analysis = pg(sql)
    assert [s.kind for s in analysis.statements] == [kind]
    assert analysis.kind == kind
    assert analysis.read_only is (kind == "read")


@pytest.mark.parametrize(
    ("script", "kind"),
    [
        ("SELECT 1; SELECT 2", "read"),
        ("SELECT 1; UPDATE t SET a = 1 WHERE b = 2", "write"),
        ("UPDATE t SET a = 1 WHERE b = 2; CREATE TABLE x (a int); SELECT 1", "ddl"),
    ],
)
def test_request_kind_is_the_strongest_statement_kind(script: str, kind: str) -> None:
    assert pg(script, "script").kind == kind


@pytest.mark.parametrize(
    ("sql", "kind", "reasons"),
    [
        ("SELECT * FROM orders", "read", ()),
        ("EXPLAIN DELETE FROM orders", "read", ()),
        ("EXPLAIN ANALYZE SELECT count(*) FROM orders", "read", ()),
        ("LISTEN orders_changed", "read", ()),
        ("INSERT INTO orders VALUES (1)", "write", ("inserts into orders",)),
        ("UPDATE orders SET a = 1 WHERE id = 1", "write", ("updates orders",)),
        (
            "EXPLAIN (ANALYZE off, ANALYZE on) DELETE FROM orders WHERE id = 1",
            "write",
            ("EXPLAIN ANALYZE runs the statement", "deletes from orders"),
        ),
        (
            "SELECT * FROM orders FOR NO KEY UPDATE",
            "write",
            ("SELECT ... FOR NO KEY UPDATE takes row locks",),
        ),
        ("SELECT * INTO archive FROM orders", "write", ("SELECT INTO creates table archive",)),
        (
            "SELECT nextval('s'), my_fn()",
            "write",
            (
                "calls nextval(), which advances a sequence",
                "calls my_fn(), which is not known to be free of side effects",
            ),
        ),
        (
            "SELECT pg_terminate_backend(1), setval('s', 1)",
            "admin",
            (
                "calls pg_terminate_backend(), which ends another session",
                "calls setval(), which sets a sequence",
            ),
        ),
        ("CREATE TABLE t (id int)", "ddl", ("CREATE TABLE changes the schema",)),
        ("DROP TABLE t", "ddl", ("DROP TABLE changes the schema",)),
        ("GRANT SELECT ON orders TO analyst", "ddl", ("GRANT changes privileges",)),
        ("TRUNCATE orders", "ddl", ("TRUNCATE empties tables",)),
        ("ANALYZE orders", "write", ("ANALYZE updates the planner's statistics",)),
        ("LOCK TABLE orders", "write", ("LOCK takes table locks",)),
        (
            "SET CONSTRAINTS ALL DEFERRED",
            "write",
            ("SET CONSTRAINTS changes when constraints are checked",),
        ),
        ("DO $$ BEGIN END $$", "write", ("DO runs procedural code that dbquery cannot inspect",)),
        ("LOAD 'auto_explain'", "admin", ("LOAD loads a library into the server",)),
        ("CHECKPOINT", "admin", ("CHECKPOINT forces a server checkpoint",)),
        ("CREATE ROLE intruder LOGIN", "admin", ("CREATE ROLE changes who may connect",)),
        (
            "CREATE TABLE t (a int DEFAULT pg_cancel_backend(1)::int)",
            "admin",
            (
                "CREATE TABLE changes the schema",
                "calls pg_cancel_backend(), which cancels another session's query",
            ),
        ),
    ],
)
def test_kind_and_the_reasons_the_approver_sees(
    sql: str, kind: str, reasons: tuple[str, ...]
) -> None:
    analysis = pg(sql)
    assert (analysis.kind, analysis.reasons) == (kind, reasons)


def test_built_ins_are_recognised_only_under_their_own_schema() -> None:
    assert pg("SELECT pg_catalog.lower('A'), lower('B')").kind == "read"
    assert pg("SELECT public.lower('A')").reasons == (
        "calls public.lower(), which is not known to be free of side effects",
    )


def test_expressions_nested_too_deeply_are_too_complex_to_check() -> None:
    with pytest.raises(AnalysisError, match="^too complex to check: expressions nested"):
        pg("SELECT " + "+".join(["1"] * 500))
    assert pg("SELECT " + "+".join(["1"] * 150)).kind == "read"


# --- tables -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "tables"),
    [
        ("SELECT * FROM orders", ("orders",)),
        (
            "SELECT * FROM sales.orders o JOIN customers c ON c.id = o.customer_id",
            ("sales.orders", "customers"),
        ),
        (
            "SELECT * FROM a WHERE id IN (SELECT a_id FROM b WHERE EXISTS (SELECT 1 FROM c))",
            ("a", "b", "c"),
        ),
        ("SELECT (SELECT max(x) FROM inner_t) FROM outer_t", ("inner_t", "outer_t")),
        (
            "WITH recent AS (SELECT * FROM orders) SELECT * FROM recent JOIN items USING (id)",
            ("orders", "items"),
        ),
        (
            "WITH gone AS (DELETE FROM orders WHERE id = 1 RETURNING *) "
            "INSERT INTO archive SELECT * FROM gone",
            ("orders", "archive"),
        ),
        (
            "WITH RECURSIVE tree AS (SELECT id FROM nodes UNION ALL "
            "SELECT n.id FROM nodes n JOIN tree t ON n.parent = t.id) SELECT * FROM tree",
            ("nodes",),
        ),
        ("WITH orders AS (SELECT 1) SELECT * FROM public.orders", ("public.orders",)),
        ("INSERT INTO orders (id) SELECT id FROM staged", ("orders", "staged")),
        (
            "UPDATE orders SET total = p.total FROM prices p WHERE p.id = orders.id",
            ("orders", "prices"),
        ),
        (
            "DELETE FROM orders USING customers WHERE customers.id = orders.customer_id",
            ("orders", "customers"),
        ),
        ('SELECT * FROM "Mixed Case"', ("Mixed Case",)),
        ("DROP TABLE sales.orders, items", ("sales.orders", "items")),
        ("TRUNCATE a, b", ("a", "b")),
        ("CREATE TABLE t (id int)", ("t",)),
        ("SELECT 1", ()),
        ("SELECT * FROM generate_series(1, 3)", ()),
        ("EXPLAIN SELECT * FROM orders", ("orders",)),
    ],
)
def test_tables_touched(sql: str, tables: tuple[str, ...]) -> None:
    assert pg(sql).tables == tables


def test_tables_are_the_union_in_first_seen_order() -> None:
    analysis = pg(
        "SELECT * FROM b; SELECT * FROM a JOIN b USING (id); DELETE FROM c WHERE x", "script"
    )
    assert analysis.tables == ("b", "a", "c")
    assert [s.tables for s in analysis.statements] == [("b",), ("a", "b"), ("c",)]


# --- warnings -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "warnings"),
    [
        ("UPDATE orders SET total = 0", ("UPDATE without WHERE on orders",)),
        ("DELETE FROM sales.orders", ("DELETE without WHERE on sales.orders",)),
        (
            "WITH gone AS (DELETE FROM orders RETURNING *) SELECT * FROM gone",
            ("DELETE without WHERE on orders",),
        ),
        ("EXPLAIN ANALYZE DELETE FROM orders", ("DELETE without WHERE on orders",)),
        ("EXPLAIN DELETE FROM orders", ()),
        ("UPDATE orders SET total = 0 WHERE id = 1", ()),
        ("DELETE FROM orders WHERE id = 1", ()),
        ("DROP TABLE orders", ("DROP TABLE orders",)),
        ("DROP TABLE IF EXISTS sales.orders, items", ("DROP TABLE sales.orders, items",)),
        ("DROP VIEW v", ("DROP VIEW v",)),
        ("DROP MATERIALIZED VIEW mv", ("DROP MATERIALIZED VIEW mv",)),
        ("DROP INDEX orders_total", ("DROP INDEX orders_total",)),
        ("DROP FUNCTION f(int)", ("DROP FUNCTION",)),
        ("TRUNCATE orders, items", ("TRUNCATE orders, items",)),
        ("ALTER TABLE orders DROP COLUMN note", ("DROP COLUMN note on orders",)),
        ("SELECT * FROM orders", ()),
    ],
)
def test_warnings(sql: str, warnings: tuple[str, ...]) -> None:
    assert pg(sql).warnings == warnings


def test_more_than_one_statement_in_a_query_is_a_warning() -> None:
    assert pg("SELECT 1; SELECT 2").warnings == (MULTIPLE_STATEMENTS_WARNING,)


def test_more_than_one_statement_in_a_script_is_normal() -> None:
    assert pg("SELECT 1; SELECT 2", "script").warnings == ()


def test_warnings_of_every_statement_are_kept_in_order() -> None:
    analysis = pg("DELETE FROM a; UPDATE b SET x = 1; TRUNCATE c", "query")
    assert analysis.warnings == (
        "DELETE without WHERE on a",
        "UPDATE without WHERE on b",
        "TRUNCATE c",
        MULTIPLE_STATEMENTS_WARNING,
    )


# --- splitting ----------------------------------------------------------------------------


def test_script_is_split_into_statements_with_their_lines() -> None:
    script = (
        "-- nightly fix\n"
        "UPDATE orders SET total = 0 WHERE id = 7;\n"
        "\n"
        "/* then check */\n"
        "SELECT ';' AS semicolon,\n"
        "       total\n"
        "  FROM orders;\n"
        "DELETE FROM orders WHERE id = 8"
    )
    analysis = pg(script, "script")
    assert analysis.statements == (
        StatementInfo(
            "UPDATE orders SET total = 0 WHERE id = 7", "write", ("orders",), 2, ("updates orders",)
        ),
        StatementInfo(
            "SELECT ';' AS semicolon,\n       total\n  FROM orders", "read", ("orders",), 5
        ),
        StatementInfo(
            "DELETE FROM orders WHERE id = 8", "write", ("orders",), 8, ("deletes from orders",)
        ),
    )


def test_dollar_quoted_body_stays_one_statement() -> None:
    analysis = pg("DO $$ BEGIN UPDATE t SET a = 1; DELETE FROM t; END $$; SELECT 1", "script")
    assert [s.kind for s in analysis.statements] == ["write", "read"]
    assert analysis.statements[0].text.endswith("END $$")


def test_statement_lines_count_characters_not_bytes() -> None:
    analysis = pg("SELECT 'ééé';\nSELECT 'ü'", "script")
    assert [(s.text, s.line) for s in analysis.statements] == [
        ("SELECT 'ééé'", 1),
        ("SELECT 'ü'", 2),
    ]


# --- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "message", "line", "column"),
    [
        ("SELECT * FORM t", 'syntax error at or near "FORM"', 1, 10),
        ("SELECT 1;\nSELEC 2", 'syntax error at or near "SELEC"', 2, 1),
        ("SELECT 'é' FROM t\n  WHERE a = = 1", 'syntax error at or near "="', 2, 13),
        ("SELECT (1", "syntax error at end of input", 1, 10),
        ("SELECT 'abc", 'unterminated quoted string at or near "\'abc"', 1, 8),
    ],
)
def test_syntax_error_reports_postgres_message_and_position(
    sql: str, message: str, line: int, column: int
) -> None:
    with pytest.raises(AnalysisError) as caught:
        pg(sql)
    error = caught.value
    assert (error.message, error.line, error.column) == (message, line, column)
    assert str(error) == f"{message} (line {line}, column {column})"


def test_syntax_error_sentence_matches_the_documented_example() -> None:
    with pytest.raises(
        AnalysisError, match=r'^syntax error at or near "FORM" \(line 1, column 10\)$'
    ):
        pg("SELECT * FORM t")


@pytest.mark.parametrize("content", ["", "   \n\t", "-- just a comment", "/* a */ -- b\n", ";;"])
def test_nothing_to_run(content: str) -> None:
    with pytest.raises(AnalysisError, match="^nothing to run"):
        pg(content)


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("BEGIN", "BEGIN is not allowed"),
        ("START TRANSACTION", "START TRANSACTION is not allowed"),
        ("COMMIT", "COMMIT is not allowed"),
        ("END", "COMMIT is not allowed"),
        ("ROLLBACK", "ROLLBACK is not allowed"),
        ("SAVEPOINT s1", "SAVEPOINT is not allowed"),
        ("RELEASE SAVEPOINT s1", "RELEASE is not allowed"),
        ("ROLLBACK TO SAVEPOINT s1", "ROLLBACK TO SAVEPOINT is not allowed"),
        ("PREPARE TRANSACTION 'x'", "PREPARE TRANSACTION is not allowed"),
        ("COMMIT PREPARED 'x'", "COMMIT PREPARED is not allowed"),
        ("COPY orders TO '/tmp/orders.csv'", "COPY is not allowed"),
        ("COPY orders FROM STDIN", "COPY is not allowed"),
        ("VACUUM orders", "VACUUM cannot run inside a transaction block"),
        ("VACUUM FULL", "VACUUM cannot run inside a transaction block"),
        ("CREATE DATABASE x", "CREATE DATABASE cannot run inside a transaction block"),
        ("DROP DATABASE x", "DROP DATABASE cannot run inside a transaction block"),
        ("CREATE TABLESPACE ts LOCATION '/x'", "CREATE TABLESPACE cannot run"),
        ("DROP TABLESPACE ts", "DROP TABLESPACE cannot run"),
        ("CREATE INDEX CONCURRENTLY i ON t (a)", "CREATE INDEX CONCURRENTLY cannot run"),
        ("DROP INDEX CONCURRENTLY i", "DROP INDEX CONCURRENTLY cannot run"),
        ("REINDEX TABLE CONCURRENTLY t", "REINDEX ... CONCURRENTLY cannot run"),
        ("REINDEX (CONCURRENTLY) INDEX i", "REINDEX ... CONCURRENTLY cannot run"),
        ("REINDEX DATABASE shop", "REINDEX DATABASE cannot run"),
        ("REINDEX SCHEMA sales", "REINDEX SCHEMA cannot run"),
        ("ALTER SYSTEM SET work_mem = '1GB'", "ALTER SYSTEM cannot run"),
        ("CLUSTER", "CLUSTER without a table cannot run"),
        ("DISCARD ALL", "DISCARD ALL cannot run"),
        ("ALTER DATABASE shop SET TABLESPACE ts", "SET TABLESPACE cannot run"),
        ("ALTER TABLE m DETACH PARTITION p CONCURRENTLY", "DETACH PARTITION ... CONCURRENTLY"),
        ("SET ROLE admin", "SET ROLE is not allowed: the request must run as"),
        ("SET SESSION AUTHORIZATION admin", "SET SESSION AUTHORIZATION is not allowed"),
        ("RESET ROLE", "RESET ROLE is not allowed"),
        ("RESET ALL", "RESET ALL is not allowed"),
        ("SET statement_timeout = 0", "SET statement_timeout is not allowed"),
        ("SET LOCAL statement_timeout TO DEFAULT", "SET statement_timeout is not allowed"),
        ("RESET statement_timeout", "RESET statement_timeout is not allowed"),
        ("SET default_transaction_read_only = off", "is not allowed"),
        ("SELECT set_config('statement_timeout', '0', false)", "set_config() is not allowed"),
        ("SELECT pg_catalog.set_config('role', 'admin', true)", "set_config() is not allowed"),
        ("SELECT set_config('search_path', 'sales', true)", "executor alone owns session"),
        ("SET search_path = sales", "SET search_path is not allowed"),
        ("SET LOCAL work_mem = '64MB'", "SET work_mem is not allowed"),
        ("SET TIME ZONE 'UTC'", "SET TIME ZONE is not allowed"),
        ("SET TRANSACTION READ WRITE", "SET TRANSACTION is not allowed"),
        ("SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE", "is not allowed"),
    ],
)
def test_refused_statements_say_why(sql: str, reason: str) -> None:
    with pytest.raises(AnalysisError) as caught:
        pg(sql)
    assert reason in caught.value.message
    assert (caught.value.line, caught.value.column) == (1, 1)


def test_refusal_points_at_the_offending_statement() -> None:
    with pytest.raises(AnalysisError) as caught:
        pg("SELECT 1;\nUPDATE t SET a = 1 WHERE b;\n  COMMIT;", "script")
    assert (caught.value.line, caught.value.column) == (3, 3)
    assert str(caught.value).endswith("(line 3, column 3)")


@pytest.mark.parametrize(
    "sql",
    [
        "SHOW search_path",
        "SELECT current_setting('search_path')",
        "NOTIFY orders_changed, 'x'",
        "CLUSTER orders USING orders_pkey",
        "CREATE INDEX i ON t (a)",
        "REINDEX INDEX i",
        "ANALYZE orders",
    ],
)
def test_allowed_neighbours_of_refused_statements(sql: str) -> None:
    assert len(pg(sql).statements) == 1


def test_unknown_database_type_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        analyse("oracle", "SELECT 1")


# --- MongoDB ------------------------------------------------------------------------------


def mongo(content: str, submission_type: str = "query") -> Analysis:
    return analyse("mongodb", content, submission_type)


def test_mongo_find_is_a_read_of_its_collection() -> None:
    analysis = mongo("db.orders.find({status: 'open'}).limit(5)")
    assert analysis.kind == "read"
    assert analysis.read_only
    assert analysis.tables == ("orders",)
    assert [s.line for s in analysis.statements] == [1]
    assert analysis.warnings == ()


def test_mongo_script_kinds_tables_and_lines() -> None:
    analysis = mongo(
        "db.orders.countDocuments({})\ndb.archive.insertOne({a: 1})\ndb.orders.find()",
        "script",
    )
    assert [(s.kind, s.tables, s.line) for s in analysis.statements] == [
        ("read", ("orders",), 1),
        ("write", ("archive",), 2),
        ("read", ("orders",), 3),
    ]
    assert analysis.kind == "write"
    assert analysis.tables == ("orders", "archive")
    assert analysis.warnings == ()


@pytest.mark.parametrize(
    ("content", "warning"),
    [
        ("db.orders.deleteMany({})", "deleteMany without a filter on orders"),
        ("db.orders.updateMany({}, {$set: {a: 1}})", "updateMany without a filter on orders"),
    ],
)
def test_mongo_unfiltered_many_operations_warn(content: str, warning: str) -> None:
    assert mongo(content).warnings == (warning,)


def test_mongo_filtered_many_operations_do_not_warn() -> None:
    assert mongo("db.orders.deleteMany({status: 'void'})").warnings == ()


def test_mongo_more_than_one_statement_in_a_query_warns() -> None:
    analysis = mongo("db.a.find()\ndb.b.find()")
    assert analysis.warnings == (MULTIPLE_STATEMENTS_WARNING,)


def test_mongo_parse_error_keeps_the_parser_message_and_position() -> None:
    content = "db.orders.find({status: 'open'\n"
    with pytest.raises(mongo_shell.MongoParseError) as parsed:
        mongo_shell.parse(content)
    with pytest.raises(AnalysisError) as analysed:
        mongo(content)
    expected = parsed.value
    assert (analysed.value.message, analysed.value.line, analysed.value.column) == (
        expected.message,
        expected.line,
        expected.column,
    )


@pytest.mark.parametrize("content", ["", "  \n  "])
def test_mongo_nothing_to_run(content: str) -> None:
    with pytest.raises(AnalysisError, match="^nothing to run"):
        mongo(content)
