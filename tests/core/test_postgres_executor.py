"""The PostgreSQL executor against a real throwaway database.

The test server trusts every connection from 127.0.0.1 (pg_hba `trust`), so a wrong password
is accepted there and cannot be exercised; refused logins are exercised with a role that may
not log in and with a role that does not exist, which the server refuses before any password
check.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from core.analysis import AnalysisError, analyse
from core.executors.base import Connection, Job
from core.executors.postgres import CUT_MARK, ROW_BUDGET_CHARS, execute_postgres
from core.executors.results import (
    AuthenticationFailed,
    ExecutionError,
    ExecutionResult,
    ResultLimits,
)
from tests.conftest import pg_url_for

OBSERVE_DEADLINE_S = 10
csv.field_size_limit(2**31 - 1)  # the huge-cell tests read cells of tens of MB back


@pytest.fixture(scope="module")
def target_url(pg_database: str) -> str:
    url = pg_url_for(pg_database)
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(
            "CREATE TABLE orders (id int PRIMARY KEY, customer text, total numeric(10, 2),"
            " placed_at timestamptz, note text)"
        )
        admin.execute(
            "INSERT INTO orders SELECT g, 'customer ' || g, g * 1.5,"
            " timestamptz '2024-03-01 10:00:00+00' + g * interval '1 hour',"
            " CASE WHEN g % 2 = 0 THEN NULL ELSE '' END"
            " FROM generate_series(1, 10) g"
        )
    return url


@pytest.fixture
def target(target_url: str) -> Callable[..., Connection]:
    """A Connection to the module's database; keyword arguments override fields."""
    params = conninfo_to_dict(target_url)

    def make(**overrides: Any) -> Connection:
        fields: dict[str, Any] = {
            "host": params.get("host", "127.0.0.1"),
            "port": int(params.get("port", 5432)),
            "database": params["dbname"],
            "username": params.get("user"),
            "password": params.get("password"),
        }
        fields.update(overrides)
        return Connection(**fields)

    return make


@pytest.fixture
def run(target: Callable[..., Connection], tmp_path: Path) -> Callable[..., ExecutionResult]:
    def execute(
        content: str,
        submission_type: str = "query",
        read_only: bool = False,
        request_uuid: str | None = None,
        limits: ResultLimits | None = None,
        **connection: Any,
    ) -> ExecutionResult:
        job = Job(
            request_uuid=request_uuid or str(uuid.uuid4()),
            submission_type=submission_type,
            content=content,
            out_dir=tmp_path,
            read_only=read_only,
            limits=limits or ResultLimits(),
        )
        return execute_postgres(target(**connection), job)

    return execute


def read_csv(path: Path | None) -> list[list[str]]:
    assert path is not None
    opener: Any = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def scalar(url: str, sql: str) -> Any:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(sql).fetchone()
        return row[0] if row else None


# --- reads --------------------------------------------------------------------------------


def test_select_streams_rows_to_csv_with_header_and_preview(run: Callable[..., Any]) -> None:
    result = run("SELECT id, customer, total FROM orders WHERE id <= 3 ORDER BY id")
    assert result.columns == ["id", "customer", "total"]
    assert result.row_count == 3
    assert not result.truncated
    assert result.file_format == "csv"
    assert read_csv(result.file_path) == [
        ["id", "customer", "total"],
        ["1", "customer 1", "1.50"],
        ["2", "customer 2", "3.00"],
        ["3", "customer 3", "4.50"],
    ]
    assert result.preview_rows == [
        ["1", "customer 1", "1.50"],
        ["2", "customer 2", "3.00"],
        ["3", "customer 3", "4.50"],
    ]
    assert [(s.status, s.kind, s.rows) for s in result.statements] == [("ok", "read", 3)]


def test_cells_are_postgres_text_with_null_distinct_from_empty(run: Callable[..., Any]) -> None:
    result = run(
        "SELECT timestamptz '2024-03-01 10:00:00+00' AT TIME ZONE 'UTC' AS at,"
        " '\\x00ff'::bytea AS raw, '{\"a\": [1, 2]}'::jsonb AS doc, NULL::text AS missing,"
        " ''::text AS blank, 'say \"hi\", bye' AS quoted, ARRAY[1, 2] AS list, true AS flag"
    )
    assert result.preview_rows == [
        ["2024-03-01 10:00:00", "\\x00ff", '{"a": [1, 2]}', None, "", 'say "hi", bye', "{1,2}", "t"]
    ]
    assert read_csv(result.file_path)[1] == [
        "2024-03-01 10:00:00",
        "\\x00ff",
        '{"a": [1, 2]}',
        "",
        "",
        'say "hi", bye',
        "{1,2}",
        "t",
    ]


def test_preview_keeps_the_first_twenty_rows(run: Callable[..., Any]) -> None:
    result = run("SELECT g FROM generate_series(1, 50) g")
    assert result.row_count == 50
    assert result.preview_rows == [[str(g)] for g in range(1, 21)]
    assert len(read_csv(result.file_path)) == 51


def test_empty_result_has_only_the_header(run: Callable[..., Any]) -> None:
    result = run("SELECT id, note FROM orders WHERE false")
    assert (result.row_count, result.preview_rows, result.truncated) == (0, [], False)
    assert read_csv(result.file_path) == [["id", "note"]]


def test_trailing_line_comment_does_not_break_the_statement(run: Callable[..., Any]) -> None:
    result = run("SELECT count(*) AS n FROM orders -- how many?")
    assert result.preview_rows == [["10"]]


def test_row_cap_stops_the_stream_and_marks_truncation(run: Callable[..., Any]) -> None:
    result = run("SELECT id FROM orders ORDER BY id", max_rows=4)
    assert (result.row_count, result.truncated) == (4, True)
    assert read_csv(result.file_path) == [["id"], ["1"], ["2"], ["3"], ["4"]]
    assert result.statements[0].rows == 4
    assert result.truncation == "stopped at the row cap of 4 rows"


def test_result_exactly_at_the_cap_is_not_truncated(run: Callable[..., Any]) -> None:
    result = run("SELECT id FROM orders", max_rows=10)
    assert (result.row_count, result.truncated, result.notes) == (10, False, [])


def test_locking_select_streams_through_a_cursor_and_honours_the_cap(
    run: Callable[..., Any],
) -> None:
    result = run("SELECT id FROM orders ORDER BY id FOR UPDATE", max_rows=3)
    assert (result.row_count, result.truncated) == (3, True)
    assert read_csv(result.file_path) == [["id"], ["1"], ["2"], ["3"]]
    assert result.statements[0].kind == "write"


def test_failure_mid_stream_rolls_back_and_leaves_no_file(
    run: Callable[..., Any], tmp_path: Path
) -> None:
    with pytest.raises(ExecutionError) as caught:
        run("SELECT id, 10 / (id - 7) AS ratio FROM orders ORDER BY id")
    assert caught.value.message == "division by zero"
    assert caught.value.partial is not None
    assert [(s.status, s.detail) for s in caught.value.partial.statements] == [
        ("failed", "division by zero")
    ]
    assert list(tmp_path.iterdir()) == []


# --- writes and transactions --------------------------------------------------------------


def test_dml_reports_affected_rows_and_commits(run: Callable[..., Any], target_url: str) -> None:
    result = run("UPDATE orders SET note = 'checked' WHERE id IN (1, 2, 3)")
    assert [(s.kind, s.status, s.affected) for s in result.statements] == [("write", "ok", 3)]
    assert result.affected == 3
    assert result.file_path is None
    assert scalar(target_url, "SELECT count(*) FROM orders WHERE note = 'checked'") == 3
    run("UPDATE orders SET note = CASE WHEN id % 2 = 0 THEN NULL ELSE '' END WHERE id <= 3")


def test_insert_returning_writes_its_rows_capped(run: Callable[..., Any], target_url: str) -> None:
    result = run(
        "INSERT INTO orders (id, customer) SELECT g, 'new' FROM generate_series(101, 105) g"
        " RETURNING id",
        max_rows=2,
    )
    assert result.statements[0].affected == 5
    assert (result.row_count, result.truncated) == (2, True)
    assert read_csv(result.file_path) == [["id"], ["101"], ["102"]]
    assert run("DELETE FROM orders WHERE id > 100").affected == 5


def test_read_only_request_cannot_write(run: Callable[..., Any], target_url: str) -> None:
    with pytest.raises(ExecutionError) as caught:
        run("DELETE FROM orders WHERE id = 1", read_only=True)
    assert caught.value.message == "cannot execute DELETE in a read-only transaction"
    assert scalar(target_url, "SELECT count(*) FROM orders WHERE id = 1") == 1


@pytest.mark.parametrize(
    "content",
    [
        "SET TRANSACTION READ WRITE;\nDELETE FROM orders",
        "SET transaction_read_only = off;\nDELETE FROM orders",
        "SELECT set_config('transaction_read_only', 'off', true);\nDELETE FROM orders",
    ],
)
def test_read_only_transaction_cannot_be_switched_back_to_read_write(
    run: Callable[..., Any], target_url: str, content: str
) -> None:
    # As if the analysis had called this a read: the transaction alone has to hold.
    with pytest.raises(ExecutionError) as caught:
        run(content, submission_type="script", read_only=True)
    assert caught.value.message in (
        "transaction read-write mode must be set before any query",
        "cannot execute DELETE in a read-only transaction",
    )
    assert scalar(target_url, "SELECT count(*) FROM orders") == 10


def test_read_only_request_can_read(run: Callable[..., Any]) -> None:
    result = run("SELECT current_setting('transaction_read_only') AS ro", read_only=True)
    assert result.preview_rows == [["on"]]


def test_script_runs_every_statement_in_one_transaction(
    run: Callable[..., Any], target_url: str
) -> None:
    result = run(
        "CREATE TABLE script_log (id int);\n"
        "INSERT INTO script_log SELECT generate_series(1, 4);\n"
        "SELECT * FROM script_log;\n"
        "DELETE FROM script_log WHERE id > 3;\n"
        "SELECT count(*) AS left_over FROM script_log;",
        submission_type="script",
    )
    assert [(s.index, s.kind, s.status, s.rows, s.affected) for s in result.statements] == [
        (1, "ddl", "ok", None, None),
        (2, "write", "ok", None, 4),
        (3, "read", "ok", 4, None),
        (4, "write", "ok", None, 1),
        (5, "read", "ok", 1, None),
    ]
    # The file holds the last read; the earlier one reports its count.
    assert read_csv(result.file_path) == [["left_over"], ["3"]]
    assert result.columns == ["left_over"]
    assert any("statement 5" in note for note in result.notes)
    assert scalar(target_url, "SELECT count(*) FROM script_log") == 3
    run("DROP TABLE script_log")


def test_failing_script_leaves_no_trace(
    run: Callable[..., Any], target_url: str, tmp_path: Path
) -> None:
    with pytest.raises(ExecutionError) as caught:
        run(
            "INSERT INTO orders (id, customer) VALUES (500, 'ghost');\n"
            "SELECT * FROM orders;\n"
            "UPDATE no_such_table SET a = 1 WHERE b = 2;\n"
            "DELETE FROM orders WHERE id = 1;",
            submission_type="script",
        )
    assert caught.value.message == 'relation "no_such_table" does not exist'
    partial = caught.value.partial
    assert partial is not None
    assert [s.status for s in partial.statements] == [
        "rolled back",
        "rolled back",
        "failed",
        "not run",
    ]
    assert partial.statements[2].detail == 'relation "no_such_table" does not exist'
    assert partial.file_path is None
    assert list(tmp_path.iterdir()) == []
    assert scalar(target_url, "SELECT count(*) FROM orders WHERE id = 500") == 0
    assert scalar(target_url, "SELECT count(*) FROM orders WHERE id = 1") == 1


def test_database_detail_accompanies_the_message(run: Callable[..., Any]) -> None:
    with pytest.raises(ExecutionError) as caught:
        run("INSERT INTO orders (id) VALUES (1)")
    assert caught.value.message == (
        'duplicate key value violates unique constraint "orders_pkey"\n'
        "DETAIL: Key (id)=(1) already exists."
    )


# --- limits -------------------------------------------------------------------------------


def test_statement_timeout_cancels_a_slow_statement(run: Callable[..., Any]) -> None:
    started = time.monotonic()
    with pytest.raises(ExecutionError) as caught:
        run("SELECT pg_sleep(30)", statement_timeout_s=1)
    assert caught.value.message == "canceling statement due to statement timeout"
    assert time.monotonic() - started < 15


def test_statement_timeout_applies_to_writes_in_scripts(run: Callable[..., Any]) -> None:
    with pytest.raises(ExecutionError) as caught:
        run(
            "UPDATE orders SET note = note WHERE id = 1;\nSELECT pg_sleep(30);",
            submission_type="script",
            statement_timeout_s=1,
        )
    assert caught.value.message == "canceling statement due to statement timeout"
    assert caught.value.partial is not None
    assert [s.status for s in caught.value.partial.statements] == ["rolled back", "failed"]


def test_slow_cursor_read_is_bounded_by_the_statement_timeout(run: Callable[..., Any]) -> None:
    # A locking SELECT is read through a cursor, one FETCH per batch. Each row costs a
    # fraction of a millisecond, so no single FETCH need reach the limit while the whole read
    # does: the limit holds for the read, not for each FETCH alone.
    started = time.monotonic()
    with pytest.raises(ExecutionError) as caught:
        run(
            "CREATE TEMP TABLE slow AS SELECT generate_series(1, 60000) AS g;\n"
            "SELECT g, (SELECT count(*) FROM generate_series(1, 1000 + g % 2)) AS work"
            " FROM slow FOR UPDATE;",
            submission_type="script",
            statement_timeout_s=1,
        )
    assert caught.value.message == "canceling statement due to statement timeout"
    assert time.monotonic() - started < 15


def test_client_deadline_cancels_what_the_session_let_run(run: Callable[..., Any]) -> None:
    # set_config(..., true) lifts the server's statement_timeout for the rest of the
    # transaction; the watchdog cancels from outside all the same.
    started = time.monotonic()
    with pytest.raises(ExecutionError) as caught:
        run(
            "SELECT set_config('statement_timeout', '0', true);\nSELECT pg_sleep(30);",
            submission_type="script",
            statement_timeout_s=1,
        )
    elapsed = time.monotonic() - started
    assert caught.value.message == (
        "timed out: the statement ran past its time limit of 1 s and was cancelled"
    )
    assert elapsed < 8
    assert caught.value.partial is not None
    assert [s.status for s in caught.value.partial.statements] == ["rolled back", "failed"]


def test_total_time_bounds_a_script_of_statements_each_within_its_limit(
    run: Callable[..., Any],
) -> None:
    started = time.monotonic()
    with pytest.raises(ExecutionError) as caught:
        run(
            "SELECT pg_sleep(0.7);\n" * 6,
            submission_type="script",
            statement_timeout_s=1,
            total_timeout_s=2,
        )
    assert caught.value.message == (
        "timed out: the request ran past its total time limit of 2 s and was cancelled"
    )
    assert time.monotonic() - started < 6
    statuses = [s.status for s in caught.value.partial.statements]
    assert "failed" in statuses and statuses[-1] == "not run"


# --- bounded results ----------------------------------------------------------------------


def test_huge_cells_are_cut_on_the_server_and_say_so(run: Callable[..., Any]) -> None:
    # Two columns share the row's budget; the short column is left whole.
    cut = ROW_BUDGET_CHARS // 2
    result = run(f"SELECT repeat('x', {cut + 1000}) AS big, 'short' AS small")
    [header, row] = read_csv(result.file_path)
    assert header == ["big", "small"]
    assert row == ["x" * cut + CUT_MARK, "short"]
    assert result.preview_rows[0][0] == "x" * 199 + "…"
    assert any(f"longer than {cut:,} characters" in note for note in result.notes)


def test_fetch_from_a_declared_cursor_streams_capped_rows(run: Callable[..., Any]) -> None:
    result = run(
        "DECLARE big_rows CURSOR FOR SELECT g, repeat('y', g * 10) AS pad"
        " FROM generate_series(1, 50) g;\nFETCH ALL big_rows;",
        submission_type="script",
        max_rows=10,
    )
    assert (result.row_count, result.truncated) == (10, True)
    assert result.columns == ["g", "pad"]
    rows = read_csv(result.file_path)
    assert rows[0] == ["g", "pad"] and rows[10] == ["10", "y" * 100] and len(rows) == 11
    assert [s.rows for s in result.statements] == [None, 10]


def test_fetch_all_from_an_endless_cursor_is_cut_at_the_row_cap_in_time(
    run: Callable[..., Any],
) -> None:
    started = time.monotonic()
    result = run(
        'DECLARE "Endless" CURSOR FOR SELECT generate_series(1, 1000000000) AS g;\n'
        'FETCH ALL FROM "Endless";',
        submission_type="script",
        max_rows=10,
        statement_timeout_s=5,
    )
    assert (result.row_count, result.truncation) == (10, "stopped at the row cap of 10 rows")
    assert read_csv(result.file_path)[1:] == [[str(g)] for g in range(1, 11)]
    assert time.monotonic() - started < 5


def test_fetch_keeps_huge_cells_cut(run: Callable[..., Any]) -> None:
    cut = ROW_BUDGET_CHARS // 2
    result = run(
        f"DECLARE c CURSOR FOR SELECT g, repeat('z', {cut} + g) AS pad"
        " FROM generate_series(1, 2) g;\nFETCH ALL c;",
        submission_type="script",
    )
    rows = read_csv(result.file_path)
    assert [r[1] == "z" * cut + CUT_MARK for r in rows[1:]] == [True, True]


def test_returning_explain_and_show_stream_their_rows(
    run: Callable[..., Any], target_url: str
) -> None:
    result = run("UPDATE orders SET note = note WHERE id <= 4 RETURNING id", max_rows=3)
    assert (result.statements[0].affected, result.row_count, result.truncated) == (4, 3, True)
    explained = run("EXPLAIN SELECT * FROM orders")
    assert explained.columns == ["QUERY PLAN"] and "orders" in explained.preview_rows[0][0]
    assert run("SHOW bytea_output").preview_rows == [["hex"]]


def test_result_size_cap_keeps_whole_rows_and_says_why(run: Callable[..., Any]) -> None:
    result = run(
        "SELECT g, md5(g::text) FROM generate_series(1, 100000) g",
        limits=ResultLimits(max_result_bytes=10_000),
    )
    assert result.truncated
    assert result.truncation == "stopped at the result size cap of 10,000 bytes"
    assert result.file_path is not None
    assert result.file_bytes == result.content_bytes <= 10_000
    rows = read_csv(result.file_path)
    assert len(rows) == result.row_count + 1
    assert rows[-1] == [str(result.row_count), _md5(result.row_count)]


def test_rows_streamed_from_a_cursor_stop_at_the_size_cap_too(run: Callable[..., Any]) -> None:
    result = run(
        "DECLARE c CURSOR FOR SELECT g, md5(g::text) FROM generate_series(1, 100000) g;\n"
        "FETCH ALL c;",
        submission_type="script",
        limits=ResultLimits(max_result_bytes=5_000, compress_over_bytes=1_000),
    )
    assert result.truncation == "stopped at the result size cap of 5,000 bytes"
    assert result.compressed and result.content_bytes <= 5_000
    rows = read_csv(result.file_path)
    assert len(rows) == result.row_count + 1 and rows[-1][0] == str(result.row_count)
    # The statement itself ran to its end: every row was read, the file kept what fits.
    assert result.statements[1].rows == result.row_count


def _md5(n: int) -> str:
    return hashlib.md5(str(n).encode()).hexdigest()


def test_large_result_is_compressed_while_streaming(run: Callable[..., Any]) -> None:
    result = run(
        "SELECT g, md5(g::text) FROM generate_series(1, 50000) g",
        limits=ResultLimits(compress_over_bytes=100_000),
    )
    assert result.compressed and not result.truncated
    assert result.file_path is not None and result.file_path.name.endswith(".csv.gz")
    assert result.file_bytes == result.file_path.stat().st_size
    with gzip.open(result.file_path, "rb") as handle:
        content = handle.read()
    assert len(content) == result.content_bytes
    assert result.file_bytes < result.content_bytes / 1.5
    rows = read_csv(result.file_path)
    assert len(rows) == 50001 and rows[50000] == ["50000", _md5(50000)]
    assert result.summary()["compressed"] is True


def test_result_over_the_upload_limit_is_cut_there(run: Callable[..., Any]) -> None:
    result = run(
        "SELECT g, md5(g::text) FROM generate_series(1, 100000) g",
        limits=ResultLimits(upload_limit_bytes=50_000, compress_over_bytes=10**9),
    )
    assert result.truncation == "cut at Slack's upload limit of 50,000 bytes for one file"
    assert result.file_bytes <= 50_000
    assert len(read_csv(result.file_path)) == result.row_count + 1


def test_a_later_read_replaces_a_compressed_file(run: Callable[..., Any], tmp_path: Path) -> None:
    result = run(
        "SELECT g FROM generate_series(1, 100000) g;\nSELECT 1 AS one;",
        submission_type="script",
        limits=ResultLimits(compress_over_bytes=1_000),
    )
    assert not result.compressed and read_csv(result.file_path) == [["one"], ["1"]]
    assert sorted(p.name for p in tmp_path.iterdir()) == [result.file_path.name]


# --- refused before reaching the database -------------------------------------------------


def test_syntax_error_is_rejected_by_analysis(run: Callable[..., Any]) -> None:
    with pytest.raises(AnalysisError) as analysed:
        analyse("postgresql", "SELECT * FORM orders")
    assert str(analysed.value) == 'syntax error at or near "FORM" (line 1, column 10)'
    with pytest.raises(ExecutionError, match='syntax error at or near "FORM"'):
        run("SELECT * FORM orders")


@pytest.mark.parametrize(
    "content",
    ["BEGIN; DELETE FROM orders; COMMIT", "VACUUM orders", "COPY orders TO STDOUT"],
)
def test_refused_statements_never_run(
    run: Callable[..., Any], target_url: str, content: str
) -> None:
    with pytest.raises(ExecutionError, match="not allowed|cannot run inside a transaction"):
        run(content, submission_type="script")
    assert scalar(target_url, "SELECT count(*) FROM orders") == 10


# --- identity and connection failures -----------------------------------------------------


@pytest.fixture
def locked_table(target_url: str) -> Iterator[tuple[psycopg.Connection, str]]:
    """A table someone else holds an exclusive lock on, until the test rolls them back."""
    table = f"locked_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(target_url, autocommit=True) as admin:
        admin.execute(f"CREATE TABLE {table} (id int)")
    with psycopg.connect(target_url) as holder:
        holder.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
        try:
            yield holder, table
        finally:
            holder.rollback()
    with psycopg.connect(target_url, autocommit=True) as admin:
        admin.execute(f"DROP TABLE {table}")


def application_blocked_on(url: str, fragment: str) -> str:
    """Poll pg_stat_activity until a backend running a query containing `fragment` waits on
    a lock; return its application_name."""
    deadline = time.monotonic() + OBSERVE_DEADLINE_S
    with psycopg.connect(url, autocommit=True) as observer:
        while time.monotonic() < deadline:
            row = observer.execute(
                "SELECT application_name FROM pg_stat_activity"
                " WHERE wait_event_type = 'Lock' AND strpos(query, %s) > 0"
                " AND pid <> pg_backend_pid()",
                (fragment,),
            ).fetchone()
            if row:
                return row[0]
    raise AssertionError(f"no backend blocked on {fragment!r} within {OBSERVE_DEADLINE_S}s")


def test_application_name_names_the_request_while_it_runs(
    run: Callable[..., Any], target_url: str, locked_table: tuple[psycopg.Connection, str]
) -> None:
    holder, table = locked_table
    # Longer than PostgreSQL keeps: the name is cut to 63 bytes.
    request_uuid = f"{uuid.uuid4()}-{'x' * 40}"
    expected = f"dbquery/{request_uuid}"[:63]
    outcome: dict[str, Any] = {}

    def execute() -> None:
        try:
            outcome["result"] = run(
                f"SELECT count(*) > 0 AS waited FROM {table}",
                request_uuid=request_uuid,
            )
        except ExecutionError as exc:
            outcome["error"] = exc

    worker = threading.Thread(target=execute)
    worker.start()
    try:
        name = application_blocked_on(target_url, f"FROM {table}")
    finally:
        holder.rollback()
        worker.join(timeout=OBSERVE_DEADLINE_S)
    assert name == expected
    assert "error" not in outcome
    assert outcome["result"].preview_rows == [["f"]]


@pytest.fixture
def nologin_role(target_url: str) -> Iterator[tuple[str, str]]:
    role = f"dbq_nologin_{uuid.uuid4().hex[:8]}"
    password = f"pw-{uuid.uuid4().hex}"
    with psycopg.connect(target_url, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} NOLOGIN PASSWORD '{password}'")
    try:
        yield role, password
    finally:
        with psycopg.connect(target_url, autocommit=True) as admin:
            admin.execute(f"DROP ROLE IF EXISTS {role}")


def test_refused_login_is_authentication_failed_without_the_password(
    run: Callable[..., Any], nologin_role: tuple[str, str]
) -> None:
    role, password = nologin_role
    with pytest.raises(AuthenticationFailed) as caught:
        run("SELECT 1", username=role, password=password)
    assert f'role "{role}" is not permitted to log in' in caught.value.message
    assert password not in str(caught.value)
    assert password not in repr(caught.value.args)


def test_unknown_role_is_authentication_failed(run: Callable[..., Any]) -> None:
    password = f"pw-{uuid.uuid4().hex}"
    with pytest.raises(AuthenticationFailed) as caught:
        run("SELECT 1", username="dbq_no_such_role", password=password)
    assert 'role "dbq_no_such_role" does not exist' in caught.value.message
    assert password not in str(caught.value)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_server_names_host_and_port_only(run: Callable[..., Any]) -> None:
    port = closed_port()
    password = f"pw-{uuid.uuid4().hex}"
    with pytest.raises(ExecutionError) as caught:
        run("SELECT 1", port=port, password=password, connect_timeout_s=3)
    assert not isinstance(caught.value, AuthenticationFailed)
    assert caught.value.message.startswith(f"cannot connect to 127.0.0.1:{port}: ")
    assert password not in str(caught.value)


def test_missing_database_is_a_plain_execution_error(run: Callable[..., Any]) -> None:
    with pytest.raises(ExecutionError) as caught:
        run("SELECT 1", database="dbq_no_such_database")
    assert not isinstance(caught.value, AuthenticationFailed)
    assert 'database "dbq_no_such_database" does not exist' in caught.value.message


def test_tls_false_connects_in_plain_text_and_tls_true_requires_it(
    run: Callable[..., Any], target_url: str
) -> None:
    with psycopg.connect(target_url) as conn:
        server_offers_tls = conn.execute("SHOW ssl").fetchone()[0] == "on"
    assert run("SELECT 1 AS one", tls=False).preview_rows == [["1"]]
    if server_offers_tls:
        assert run(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", tls=True
        ).preview_rows == [["t"]]
    else:
        with pytest.raises(ExecutionError, match="SSL"):
            run("SELECT 1", tls=True)


def test_returning_keeps_huge_cells_cut_on_the_server(run: Callable[..., Any]) -> None:
    cut = ROW_BUDGET_CHARS // 2
    result = run(
        "UPDATE orders SET note = note WHERE id <= 2"
        f" RETURNING id, repeat('r', {cut + 1000}) AS pad, 'short' AS small",
        limits=ResultLimits(),
    )
    assert result.statements[0].affected == 2
    rows = read_csv(result.file_path)
    assert rows[0] == ["id", "pad", "small"]
    assert sorted(r[0] for r in rows[1:]) == ["1", "2"]
    assert all(r[1] == "r" * (ROW_BUDGET_CHARS // 3) + CUT_MARK for r in rows[1:])
    assert all(r[2] == "short" for r in rows[1:])


def test_returning_of_a_write_with_its_own_writing_with_is_cut_too(
    run: Callable[..., Any],
) -> None:
    # PostgreSQL takes a WITH that writes only at the top: the write's own WITH goes first, and
    # a CTE of the request's named like dbquery's does not make the wrapping fail.
    cut = ROW_BUDGET_CHARS // 2
    result = run(
        "WITH touched AS (UPDATE orders SET note = note WHERE id = 1 RETURNING id),"
        " dbquery_changed AS (SELECT 1)"
        f" UPDATE orders SET note = note WHERE id = 2 RETURNING id, repeat('w', {cut + 10}) AS pad",
    )
    assert result.statements[0].status == "ok"
    rows = read_csv(result.file_path)
    assert rows == [["id", "pad"], ["2", "w" * cut + CUT_MARK]]


def test_a_prepared_write_with_its_own_writing_with_is_cut_too(run: Callable[..., Any]) -> None:
    cut = ROW_BUDGET_CHARS // 2
    result = run(
        "PREPARE touch (int) AS WITH RECURSIVE touched AS"
        " (UPDATE orders SET note = note WHERE id = $1 RETURNING id)"
        f" UPDATE orders SET note = note WHERE id = $1 RETURNING id, repeat('w', {cut + 10}) AS pad;"
        "\nEXECUTE touch(3);",
        submission_type="script",
    )
    assert read_csv(result.file_path) == [["id", "pad"], ["3", "w" * cut + CUT_MARK]]


def test_execute_of_a_prepared_statement_keeps_huge_cells_cut(run: Callable[..., Any]) -> None:
    cut = ROW_BUDGET_CHARS // 2
    result = run(
        f"PREPARE big (int) AS SELECT repeat('x', {cut} + $1) AS pad, $1 AS n;\n"
        "EXECUTE big(1000);\nEXECUTE big(7);",
        submission_type="script",
    )
    assert [s.status for s in result.statements] == ["ok", "ok", "ok"]
    assert read_csv(result.file_path) == [["pad", "n"], ["x" * cut + CUT_MARK, "7"]]


def test_execute_of_a_prepared_write_keeps_returned_cells_cut(run: Callable[..., Any]) -> None:
    cut = ROW_BUDGET_CHARS // 2
    result = run(
        "PREPARE touch AS UPDATE orders SET note = note WHERE id = $1"
        f" RETURNING id, repeat('r', {cut + 1000}) AS pad;\nEXECUTE touch(2);",
        submission_type="script",
    )
    assert read_csv(result.file_path) == [["id", "pad"], ["2", "r" * cut + CUT_MARK]]


def test_a_prepared_statement_with_short_rows_is_left_as_written(
    run: Callable[..., Any], target_url: str
) -> None:
    result = run(
        "PREPARE small (text) AS SELECT $1 || '!' AS shout, 2 AS two;\nEXECUTE small('hi');",
        submission_type="script",
    )
    assert read_csv(result.file_path) == [["shout", "two"], ["hi!", "2"]]
    with psycopg.connect(target_url) as conn:  # each request has a session of its own
        assert conn.execute("SELECT count(*) FROM pg_prepared_statements").fetchone() == (0,)


def test_a_statement_named_like_dbquerys_own_does_not_lift_the_cut(
    run: Callable[..., Any],
) -> None:
    # Taking the name dbquery prepares its wrapped statement under first must not make the
    # wrapping fail, and with it the cut.
    cut = ROW_BUDGET_CHARS  # one column has the whole row's budget
    result = run(
        "PREPARE dbquery_capped_trial AS SELECT 1;\n"
        f"PREPARE big AS SELECT repeat('x', {cut + 1000}) AS pad;\nEXECUTE big;",
        submission_type="script",
    )
    assert read_csv(result.file_path) == [["pad"], ["x" * cut + CUT_MARK]]
