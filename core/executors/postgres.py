"""Run an approved request against a PostgreSQL target.

One transaction per request (a script is all or nothing). What holds whatever the analysis
said and whatever the credentials may do:

- A read-only request runs in a transaction opened READ ONLY and locked in by a query of the
  executor's own before the request's text: PostgreSQL lets SET TRANSACTION READ WRITE undo
  READ ONLY until the transaction's first query, and SET statements do not count as one.
- Time: the server's statement_timeout, and a watchdog thread that cancels the running query
  from outside once a statement outlives it by a small grace or the request outlives its
  total time, whatever the session's own settings say; on PostgreSQL 17 and later,
  transaction_timeout as well.
- Memory: no statement's result is fetched whole. SELECTs are exported with COPY ... TO
  STDOUT (the server writes the CSV, one line per message) through a wrapper that cuts very
  long cells on the server, so no single message can be huge; a DECLAREd cursor gets the same
  wrapper, and so do INSERT, UPDATE, DELETE and MERGE ... RETURNING (as the body of a WITH)
  and a PREPAREd statement of either kind (prepared again, wrapped, for its EXECUTEs); every
  row-returning statement but COPY's streams one row at a time. The result file stops at the
  row cap and the byte cap.
- Cells arrive as PostgreSQL's own text, on both paths, so no value is parsed into a Python
  object only to be formatted back into text.
"""

from __future__ import annotations

import csv
import io
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import psycopg
import psycopg.postgres
from pglast import ast, parser
from pglast.enums import FetchDirection
from pglast.stream import RawStream
from psycopg import pq
from psycopg.adapt import AdaptersMap
from psycopg.types.string import TextLoader

from core.analysis import DDL, READ, WRITE, AnalysisError, analyse
from core.executors.base import Connection, Job
from core.executors.connect import connect_postgres, failure_reason, without_secret
from core.executors.results import (
    PREVIEW_MAX_ROWS,
    AuthenticationFailed,
    ExecutionError,
    ExecutionResult,
    ResultWriter,
    StatementOutcome,
    replace_result_file,
    short_cell,
)

APPLICATION_NAME_MAX_BYTES = 63  # PostgreSQL truncates longer names (NAMEDATALEN - 1)
DISPLAY_TEXT_MAX_CHARS = 200
# The watchdog cancels a statement this long after the server's own statement_timeout
# should have: the server's message is the clearer one when it comes in time.
CANCEL_GRACE_S = 2.0
# Cells are cut on the server so that one row (one protocol message, which libpq holds
# whole, twice over while it is handed to Python) stays within a few tens of MB: each
# column of a row gets an equal share of the budget, but never less than the floor.
ROW_BUDGET_CHARS = 8 * 1024 * 1024
CELL_FLOOR_CHARS = 16 * 1024
CUT_MARK = "…[cut]"
# Types whose text is short whatever the value: their columns are exported as they are.
_BOUNDED_TYPES = (
    "bool", "int2", "int4", "int8", "float4", "float8", "numeric", "money", "oid",
    "date", "time", "timetz", "timestamp", "timestamptz", "interval", "uuid",
    "inet", "cidr", "macaddr", "macaddr8", "char", "name", "pg_lsn",
)  # fmt: skip

# libpq reports a refused login only as text (a failed connection carries no SQLSTATE).
_AUTHENTICATION_FAILURE = re.compile(
    r"authentication failed|no pg_hba\.conf entry|pg_hba\.conf rejects|"
    r"is not permitted to log in|role \".*\" does not exist|no password supplied",
)
_IN_OWN_TRANSACTION = "dbquery runs the whole request in one transaction of its own"


class _TimedOut(Exception):
    """The watchdog cancelled a statement, or the request ran out of time between two."""


@dataclass
class _Rows:
    """What a row-returning statement put in the result file."""

    columns: list[str]
    preview: list[list[Any]] = field(default_factory=list)
    count: int = 0  # rows in the file
    seen: int = 0  # rows the statement returned, the ones past a cap included
    cells_cut: int = 0  # the longest a cell may be when some were cut, else 0


@dataclass(frozen=True)
class _Step:
    text: str
    kind: str
    node: ast.Node


def execute_postgres(conn: Connection, job: Job) -> ExecutionResult:
    """Run the job in one transaction; raise ExecutionError (with what ran) if anything fails."""
    started = time.monotonic()
    steps = _plan(job)
    outcomes = [
        StatementOutcome(index=i, text=_display(s.text), kind=s.kind, status="not run")
        for i, s in enumerate(steps, start=1)
    ]
    result = ExecutionResult(statements=outcomes)
    pg = _connect(conn, job)
    watchdog = _Watchdog(pg)
    try:
        _start_transaction(pg, conn, job.read_only)
        _run_steps(pg, steps, result, conn, job, watchdog, started)
        pg.commit()
    except (psycopg.Error, _TimedOut) as exc:
        _rollback_quietly(pg)
        if result.file_path is not None:
            result.file_path.unlink(missing_ok=True)
        for outcome in outcomes:
            if outcome.status == "ok":
                outcome.status = "rolled back"
        partial = ExecutionResult(statements=outcomes, elapsed_ms=_elapsed_ms(started))
        raise ExecutionError(_error_message(exc, conn), partial=partial) from None
    finally:
        pg.close()
    result.elapsed_ms = _elapsed_ms(started)
    return result


def _plan(job: Job) -> list[_Step]:
    """Split with PostgreSQL's own parser; refuse what would break the one transaction.

    The analysis lends its labels (read, write, ...) for the report but decides nothing here:
    what may run was settled at submit, and what keeps a read a read is the transaction.
    """
    try:
        raw_statements = parser.parse_sql(job.content)
    except parser.ParseError as exc:
        raise ExecutionError(str(exc.args[0])) from None
    except RecursionError:
        raise ExecutionError("the text is too deeply nested to run") from None
    texts = [_statement_text(job.content, raw) for raw in raw_statements]
    if not texts:
        raise ExecutionError("nothing to run: the text is empty or holds only comments")
    for raw in raw_statements:
        refusal = _refusal(raw.stmt)
        if refusal:
            raise ExecutionError(refusal)
    kinds = _labels(job, len(texts))
    return [
        _Step(text, kind if kinds else _fallback_kind(raw.stmt), raw.stmt)
        for text, kind, raw in zip(texts, kinds or texts, raw_statements, strict=True)
    ]


def _statement_text(content: str, raw: ast.RawStmt) -> str:
    # stmt_len 0 means "up to the end of the text" (the last statement without a semicolon).
    end = raw.stmt_location + raw.stmt_len if raw.stmt_len else len(content)
    return content[raw.stmt_location : end].strip()


def _refusal(node: ast.Node) -> str | None:
    if isinstance(node, ast.TransactionStmt):
        return f"transaction control is not allowed: {_IN_OWN_TRANSACTION}"
    if isinstance(node, ast.CopyStmt):
        return "COPY is not allowed: use SELECT (the result comes back as a CSV file) or INSERT"
    return None


def _labels(job: Job, count: int) -> list[str] | None:
    try:
        analysis = analyse("postgresql", job.content, job.submission_type)
    except (AnalysisError, RecursionError):
        return None
    kinds = [s.kind for s in analysis.statements]
    return kinds if len(kinds) == count else None


def _fallback_kind(node: ast.Node) -> str:
    if isinstance(node, ast.SelectStmt) and _declarable(node) and not node.lockingClause:
        return READ
    if type(node).__name__.startswith(("Create", "Alter", "Drop")):
        return DDL
    return WRITE


def _run_steps(
    pg: psycopg.Connection,
    steps: list[_Step],
    result: ExecutionResult,
    conn: Connection,
    job: Job,
    watchdog: _Watchdog,
    started: float,
) -> None:
    last_rows: tuple[int, _Rows] | None = None
    with_rows = 0
    for number, (step, outcome) in enumerate(zip(steps, result.statements, strict=True), 1):
        try:
            with watchdog.limit(*_time_left(conn, started)):
                rows = _run_statement(pg, step, outcome, conn, job, result)
        except (psycopg.Error, _TimedOut) as exc:
            outcome.status = "failed"
            outcome.detail = _error_message(exc, conn)
            raise
        outcome.status = "ok"
        if rows is not None:
            outcome.rows = rows.count
            # A later row-returning statement replaces the file: a script's result is its
            # last read, earlier ones report their row counts.
            result.columns = rows.columns
            result.preview_rows = rows.preview
            last_rows = (number, rows)
            with_rows += 1
    if last_rows is None:
        return
    number, rows = last_rows
    if with_rows > 1:
        result.notes.append(
            f"the result holds the rows of statement {number}; "
            "earlier statements report their row counts only"
        )
    if rows.cells_cut:
        result.notes.append(
            f"cells longer than {rows.cells_cut:,} characters were cut in the file "
            f"(they end with {CUT_MARK})"
        )


def _time_left(conn: Connection, started: float) -> tuple[float, str]:
    """How long the next statement may run before the watchdog cancels it, and what to say."""
    total_left = started + conn.total_timeout_s - time.monotonic()
    statement = conn.statement_timeout_s + CANCEL_GRACE_S
    if total_left < statement:
        return total_left, (
            f"timed out: the request ran past its total time limit of "
            f"{conn.total_timeout_s} s and was cancelled"
        )
    return statement, (
        f"timed out: the statement ran past its time limit of "
        f"{conn.statement_timeout_s} s and was cancelled"
    )


class _Watchdog:
    """Cancels the running query from another thread once the current limit passes.

    A cancel that raced with the statement's end is still a time-out: the cancel request may
    land on whatever runs next, so the request stops either way.
    """

    def __init__(self, pg: psycopg.Connection) -> None:
        self._pg = pg
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._fired = False

    def limit(self, seconds: float, message: str) -> _Limit:
        return _Limit(self, seconds, message)

    def arm(self, seconds: float) -> None:
        timer = threading.Timer(seconds, self._fire)
        timer.daemon = True
        with self._lock:
            self._timer, self._fired = timer, False
        timer.start()

    def disarm(self) -> bool:
        """Stop the timer; True when it had fired. Waits for a cancel being sent."""
        with self._lock:
            timer, self._timer = self._timer, None
            fired = self._fired
        if timer is not None:
            timer.cancel()
        return fired

    def _fire(self) -> None:
        with self._lock:
            if self._timer is None:
                return
            self._fired = True
            try:
                self._pg.cancel_safe(timeout=10)
            except psycopg.Error:
                # The connection is gone: the statement cannot outlive it.
                return


class _Limit:
    def __init__(self, watchdog: _Watchdog, seconds: float, message: str) -> None:
        self.watchdog, self.seconds, self.message = watchdog, seconds, message

    def __enter__(self) -> None:
        if self.seconds <= 0:
            raise _TimedOut(self.message)
        self.watchdog.arm(self.seconds)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        fired = self.watchdog.disarm()
        if fired and (exc is None or isinstance(exc, psycopg.Error)):
            raise _TimedOut(self.message) from None


# --- connection and transaction -----------------------------------------------------------


@cache
def _raw_text_adapters() -> AdaptersMap:
    """Loaders that hand every value over as PostgreSQL's own text (C loaders, no parsing)."""
    adapters = AdaptersMap(psycopg.adapters)
    for info in psycopg.postgres.types:
        adapters.register_loader(info.oid, TextLoader)
        if info.array_oid:
            adapters.register_loader(info.array_oid, TextLoader)
    return adapters


@cache
def _bounded_type_oids() -> frozenset[int]:
    found = (psycopg.postgres.types.get(name) for name in _BOUNDED_TYPES)
    return frozenset(info.oid for info in found if info is not None)


def _application_name(request_uuid: str) -> str:
    raw = f"dbquery/{request_uuid}".encode()[:APPLICATION_NAME_MAX_BYTES]
    return raw.decode("utf-8", errors="ignore")


def _connect(conn: Connection, job: Job) -> psycopg.Connection:
    try:
        return connect_postgres(
            conn,
            application_name=_application_name(job.request_uuid),
            connect_timeout_s=conn.connect_timeout_s,
            client_encoding="utf8",
            context=_raw_text_adapters(),
            # Server-side prepared statements would outlive nothing here and break poolers.
            prepare_threshold=None,
        )
    except psycopg.Error as exc:
        raise _connection_failure(conn, exc) from None


def _connection_failure(conn: Connection, exc: psycopg.Error) -> ExecutionError:
    reason = failure_reason(exc, conn)
    where = f"{conn.host}:{conn.port}"
    if _AUTHENTICATION_FAILURE.search(reason):
        return AuthenticationFailed(f"{where} refused the credentials: {reason}")
    return ExecutionError(f"cannot connect to {where}: {reason}")


def _start_transaction(pg: psycopg.Connection, conn: Connection, read_only: bool) -> None:
    settings = ["SET TRANSACTION READ ONLY"] if read_only else []
    settings += [
        f"SET LOCAL statement_timeout = {int(conn.statement_timeout_s) * 1000}",
        # Dates in ISO 8601 and bytea as hex whatever the server's defaults; setting only the
        # output style keeps the server's day/month order for reading date literals.
        "SET LOCAL DateStyle = ISO",
        "SET LOCAL bytea_output = hex",
    ]
    if pg.info.server_version >= 170000:
        settings.append(f"SET LOCAL transaction_timeout = {int(conn.total_timeout_s) * 1000}")
    # The transaction's first query: from here on READ ONLY cannot be switched back.
    settings.append("SELECT 1")
    pg.execute("; ".join(settings))


def _rollback_quietly(pg: psycopg.Connection) -> None:
    try:
        pg.rollback()
    except psycopg.Error:
        # The connection is already broken: the server rolls back when it goes away.
        return


# --- running statements -------------------------------------------------------------------


def _declarable(node: ast.Node) -> bool:
    """A SELECT that a subquery (and DECLARE ... CURSOR FOR) accepts."""
    if not isinstance(node, ast.SelectStmt) or node.intoClause is not None:
        return False
    ctes = node.withClause.ctes if node.withClause else ()
    return all(isinstance(c.ctequery, ast.SelectStmt) for c in ctes or ())


_DML = (ast.InsertStmt, ast.UpdateStmt, ast.DeleteStmt, ast.MergeStmt)


def _returns_rows(node: ast.Node) -> bool:
    """Statements streamed row by row (the rest return nothing, or a single row)."""
    if isinstance(node, ast.FetchStmt):
        return not node.ismove
    if isinstance(node, _DML):
        return bool(getattr(node, "returningClause", None) or getattr(node, "returningList", None))
    if isinstance(node, ast.SelectStmt):
        return node.intoClause is None
    return isinstance(node, (ast.ExplainStmt, ast.VariableShowStmt, ast.ExecuteStmt))


def _run_statement(
    pg: psycopg.Connection,
    step: _Step,
    outcome: StatementOutcome,
    conn: Connection,
    job: Job,
    result: ExecutionResult,
) -> _Rows | None:
    node = step.node
    if _declarable(node):
        return _with_writer(job, result, lambda w: _copy_select(pg, step.text, w, conn.max_rows))
    if isinstance(node, ast.DeclareCursorStmt) and _declarable(node.query):
        pg.execute(_capped_declare(pg, step.text, node))
        return None
    if isinstance(node, ast.PrepareStmt):
        pg.execute(step.text)
        _cap_prepared(pg, step.text, node)
        return None
    if _returns_rows(node):
        text = _capped_fetch(node, conn.max_rows) or step.text
        if isinstance(node, _DML):
            text = _capped_returning(pg, text, node)
        rows = _with_writer(job, result, lambda w: _stream_rows(pg, text, w, conn.max_rows))
        if rows is not None and isinstance(node, _DML):
            outcome.affected = rows.seen  # RETURNING returns every row the statement changed
        return rows
    with pg.cursor() as cursor:
        cursor.execute(step.text)
        if cursor.rowcount >= 0 and (isinstance(node, _DML) or cursor.description is None):
            outcome.affected = cursor.rowcount
        if cursor.description is None:
            return None
        # A CALL's output parameters: a single row.
        return _with_writer(job, result, lambda w: _write_fetched(cursor, w, conn.max_rows))


def _with_writer(job: Job, result: ExecutionResult, write: Any) -> _Rows | None:
    """Run `write` into a new result file; the file replaces the result's when rows came."""
    writer = ResultWriter(job.out_dir / f"{job.request_uuid}.csv", "csv", job.limits)
    try:
        rows = write(writer)
    except BaseException:
        writer.discard()
        raise
    if rows is None:
        writer.discard()
        return None
    replace_result_file(result, writer.commit(), rows.count)
    return rows


def _row_cap_reason(max_rows: int) -> str:
    return f"stopped at the row cap of {max_rows:,} rows"


class _CsvLines:
    """Formats rows of text (None for NULL) as CSV lines, one bytes object per row.

    The csv module holds a row as four bytes a character, twice (its record and StringIO's
    buffer): for a row of long cells that is several times the row, so those are formatted
    here instead, with PostgreSQL's own quoting rules.
    """

    LONG_ROW_CHARS = 64 * 1024

    def __init__(self) -> None:
        self._buffer = io.StringIO()
        self._writer = csv.writer(self._buffer, lineterminator="\n")

    def line(self, row: Any) -> bytes:
        if sum(len(cell) for cell in row if cell) > self.LONG_ROW_CHARS:
            return (",".join(_csv_field(cell) for cell in row) + "\n").encode()
        buffer = self._buffer
        buffer.seek(0)
        buffer.truncate()
        self._writer.writerow(row)
        return buffer.getvalue().encode()


def _csv_field(cell: str | None) -> str:
    if cell is None:
        return ""
    if cell == "" or any(ch in cell for ch in ',"\r\n'):
        return '"' + cell.replace('"', '""') + '"'
    return cell


def _stream_rows(
    pg: psycopg.Connection, text: str, writer: ResultWriter, max_rows: int
) -> _Rows | None:
    """Single-row mode: one row in memory at a time, whatever the statement."""
    lines = _CsvLines()
    rows: _Rows | None = None
    writing = True
    with pg.cursor() as cursor:
        try:
            for row in cursor.stream(text):
                if rows is None:
                    rows = _Rows(columns=[c.name for c in cursor.description or ()])
                    writing = writer.write(lines.line(rows.columns))
                rows.seen += 1
                if not writing:
                    continue  # past a cap: the rest is read and dropped, the statement completes
                if rows.count == max_rows:
                    writer.stop(_row_cap_reason(max_rows))
                    writing = False
                    continue
                line = lines.line(row)
                if not writer.write(line):
                    writing = False
                    continue
                rows.count += 1
                if len(rows.preview) < PREVIEW_MAX_ROWS:
                    rows.preview.append([short_cell(cell) for cell in row])
                if len(line) > CELL_FLOOR_CHARS:
                    rows.cells_cut = max(rows.cells_cut, _cut_length(row))
        except psycopg.ProgrammingError as exc:
            if exc.sqlstate is not None:
                raise
            # psycopg's word for a statement that returned no rows at all (an EXECUTE of a
            # prepared write): it completed.
            return None
    return rows


def _cut_length(row: Any) -> int:
    """The length long cells were cut to on the server (a DECLAREd cursor's), or 0."""
    cut = [len(c) - len(CUT_MARK) for c in row if isinstance(c, str) and c.endswith(CUT_MARK)]
    return max(cut, default=0)


def _write_fetched(cursor: psycopg.Cursor[Any], writer: ResultWriter, max_rows: int) -> _Rows:
    lines = _CsvLines()
    rows = _Rows(columns=[column.name for column in cursor.description or ()])
    writer.write(lines.line(rows.columns))
    for row in cursor:
        rows.seen += 1
        if rows.count == max_rows:
            writer.stop(_row_cap_reason(max_rows))
            break
        if not writer.write(lines.line(row)):
            break
        rows.count += 1
        if len(rows.preview) < PREVIEW_MAX_ROWS:
            rows.preview.append([short_cell(cell) for cell in row])
    return rows


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _capped_select(pg: psycopg.Connection, text: str) -> tuple[list[str], int, str]:
    """The SELECT with long cells cut on the server: (column names, cut length or 0, SQL).

    The columns are learned with LIMIT 0, which plans the query and runs none of it. The inner
    query sits behind OFFSET 0 so that it is evaluated once per row, not once per mention.
    """
    with pg.cursor() as cursor:
        cursor.execute(f"SELECT * FROM (\n{text}\n) AS dbquery_result LIMIT 0")
        description = [(column.name, column.type_code) for column in cursor.description or ()]
    columns = [name for name, _ in description]
    cut, exprs = _cut_columns(description)
    if not cut:
        return columns, 0, f"SELECT * FROM (\n{text}\n) AS dbquery_result"
    return columns, cut, _cut_select(text, exprs, len(description))


def _aliases(count: int) -> str:
    return ", ".join(f"c{i}" for i in range(1, count + 1))


def _cut_select(query: str, exprs: str, count: int) -> str:
    """`query` (a SELECT of `count` columns) behind the cutting expressions of _cut_columns."""
    return (
        f"SELECT {exprs} FROM (SELECT * FROM (\n{query}\n) AS dbquery_inner OFFSET 0)"
        f" AS dbquery_result({_aliases(count)})"
    )


def _cut_returning(statement: str, exprs: str, count: int, node: ast.Node) -> str:
    """`statement` (`node`, a write RETURNING `count` columns) as the body of a WITH that cuts
    them.

    PostgreSQL takes a WITH that writes only at the top, so a WITH of the write's own comes
    first (the statement is then written out from its parse tree), and the cutting query is
    named so that none of its names can be taken already.
    """
    changed = f"dbquery_changed_{secrets.token_hex(8)}"
    head = "WITH"
    own = getattr(node, "withClause", None)
    if own is not None:
        head = f"WITH {RawStream()(own)},"  # RECURSIVE, if it is, included
        fields = {slot: getattr(node, slot) for slot in node.__slots__ if slot != "withClause"}
        statement = RawStream()(type(node)(**fields))
    return f"{head} {changed}({_aliases(count)}) AS (\n{statement}\n) SELECT {exprs} FROM {changed}"


def _cut_columns(description: list[tuple[str, int]]) -> tuple[int, str]:
    """Select expressions over columns c1, c2, ... that cut long cells: (cut length, SQL).

    Cells of types whose text is always short are left alone; the others are cut to the row's
    budget shared by its columns, and end with a mark so that the cut is visible. (0, "") when
    no column needs it.
    """
    bounded = _bounded_type_oids()
    if all(type_oid in bounded for _, type_oid in description):
        return 0, ""
    cut = max(CELL_FLOOR_CHARS, ROW_BUDGET_CHARS // len(description))
    mark = CUT_MARK.replace("'", "''")
    exprs = []
    for i, (name, type_oid) in enumerate(description, start=1):
        if type_oid in bounded:
            exprs.append(f"c{i} AS {_quote_ident(name)}")
        else:
            exprs.append(
                f"CASE WHEN length(c{i}::text) > {cut} "
                f"THEN left(c{i}::text, {cut}) || '{mark}' ELSE c{i}::text END "
                f"AS {_quote_ident(name)}"
            )
    return cut, ", ".join(exprs)


def _capped_returning(pg: psycopg.Connection, text: str, node: ast.Node) -> str:
    """INSERT/UPDATE/DELETE/MERGE ... RETURNING with long cells cut on the server.

    The statement becomes the body of a WITH whose rows are cut as a SELECT's are, so no
    returned row arrives whole past the row budget. Its columns are learned by preparing it
    (which runs none of it), inside a savepoint: a statement PostgreSQL will not take inside a
    WITH (a write on a table with DO INSTEAD rules) runs as it was.
    """
    pgconn = pg.pgconn
    pg.execute("SAVEPOINT dbquery_describe")
    try:
        described = _describe(pgconn, text)
        if described is None:
            return text
        cut, exprs = _cut_columns(described)
        if not cut:
            return text
        wrapped = _cut_returning(text, exprs, len(described), node)
        return wrapped if _describe(pgconn, wrapped) is not None else text
    finally:
        if pgconn.transaction_status == pq.TransactionStatus.INERROR:
            pg.execute("ROLLBACK TO SAVEPOINT dbquery_describe")
        pg.execute("RELEASE SAVEPOINT dbquery_describe")


def _cap_prepared(pg: psycopg.Connection, text: str, node: ast.PrepareStmt) -> None:
    """Prepare again, with long cells cut on the server, a statement PREPARE just made.

    An EXECUTE can be neither a subquery nor the body of a WITH, so its rows are bounded where
    they are defined: a SELECT goes behind the cutting wrapper a SELECT's export uses, and an
    INSERT/UPDATE/DELETE/MERGE ... RETURNING into the cutting WITH. The parameters keep the
    types PostgreSQL gave them, and the columns their names. The wrapped statement is first
    prepared under a random name of dbquery's own, inside a savepoint: one PostgreSQL refuses leaves
    the request's statement as it was.
    """
    query = node.query
    if _declarable(query) and not query.lockingClause:
        shape = "select"
    elif isinstance(query, _DML) and _returns_rows(query):
        shape = "returning"
    else:
        return
    name = _quote_ident(node.name)
    described = _described_prepared(pg.pgconn, node.name)
    cut, exprs = _cut_columns(described or [])
    body = _prepared_body(text)
    if not described or not cut or body is None:
        return
    if shape == "select":
        wrapped = _cut_select(body, exprs, len(described))
    else:
        wrapped = _cut_returning(body, exprs, len(described), query)
    with pg.cursor() as cursor:
        cursor.execute(
            "SELECT t::text FROM pg_prepared_statements, unnest(parameter_types)"
            " WITH ORDINALITY AS p(t, i) WHERE name = %s ORDER BY i",
            [node.name],
        )
        types = [row[0] for row in cursor.fetchall()]
    params = f"({', '.join(types)})" if types else ""
    # A name nobody could have taken: a statement the request prepared under a name of
    # dbquery's own would otherwise make the trial fail, and leave its rows uncut.
    trial = f"dbquery_trial_{secrets.token_hex(8)}"
    pg.execute("SAVEPOINT dbquery_prepare")
    try:
        pg.execute(f"PREPARE {trial}{params} AS {wrapped}")
    except psycopg.Error:
        pg.execute("ROLLBACK TO SAVEPOINT dbquery_prepare")
        return
    finally:
        pg.execute("RELEASE SAVEPOINT dbquery_prepare")
    pg.execute(f"DEALLOCATE {trial}")
    pg.execute(f"DEALLOCATE {name}")
    pg.execute(f"PREPARE {name}{params} AS {wrapped}")


def _prepared_body(text: str) -> str | None:
    """The statement of PREPARE name [(types)] AS statement, as written."""
    depth = 0
    for token in list(parser.scan(text))[2:]:
        if token.name == "ASCII_40":
            depth += 1
        elif token.name == "ASCII_41":
            depth -= 1
        elif depth == 0 and token.name == "AS":
            return text[token.end + 1 :]
    return None


def _described_prepared(pgconn: pq.abc.PGconn, name: str) -> list[tuple[str, int]] | None:
    described = pgconn.describe_prepared(name.encode())
    if described.status != pq.ExecStatus.COMMAND_OK:
        return None
    return [
        ((described.fname(i) or b"?column?").decode(), described.ftype(i))
        for i in range(described.nfields)
    ]


def _describe(pgconn: pq.abc.PGconn, text: str) -> list[tuple[str, int]] | None:
    """The result columns of `text`, prepared without being run; None if it does not prepare."""
    prepared = pgconn.prepare(b"", text.encode())
    if prepared.status != pq.ExecStatus.COMMAND_OK:
        return None
    return _described_prepared(pgconn, "")


def _capped_declare(pg: psycopg.Connection, text: str, node: ast.DeclareCursorStmt) -> str:
    """DECLARE ... CURSOR FOR <the query with long cells cut>, so a FETCH streams bounded rows.

    A cursor FOR UPDATE keeps its own query: wrapped, it would no longer be updatable
    through WHERE CURRENT OF.
    """
    if node.query.lockingClause:
        return text
    tokens = list(parser.scan(text))
    # DECLARE name ... CURSOR [WITH[OUT] HOLD] FOR query: the name may itself be a keyword.
    start = next(
        (t.end + 1 for t in tokens[2:] if t.name == "FOR" and t.kind == "RESERVED_KEYWORD"),
        None,
    )
    if start is None:
        return text
    _, _, query = _capped_select(pg, text[start:])
    return f"{text[:start]}\n{query}"


def _capped_fetch(node: ast.Node, max_rows: int) -> str | None:
    """FETCH ALL (or any count past the row cap) as a FETCH of one row past the cap.

    Rows past the cap are read and dropped; a cursor over millions of rows would make that
    outlast the time limit and fail a read that only had to be cut. The cursor then stands
    where the capped FETCH left it, which only a later statement on it could tell.
    """
    if not isinstance(node, ast.FetchStmt) or node.ismove:
        return None
    if node.direction not in (FetchDirection.FETCH_FORWARD, FetchDirection.FETCH_BACKWARD):
        return None
    if node.howMany <= max_rows + 1:
        return None
    direction = "FORWARD" if node.direction == FetchDirection.FETCH_FORWARD else "BACKWARD"
    return f"FETCH {direction} {max_rows + 1} FROM {_quote_ident(node.portalname)}"


def _copy_select(pg: psycopg.Connection, text: str, writer: ResultWriter, max_rows: int) -> _Rows:
    """Export a SELECT with COPY ... TO STDOUT, writing each CSV line as it arrives.

    LIMIT max_rows + 1 lets the server stop at the cap while still telling whether it cut.
    The newlines keep a trailing line comment in the statement from swallowing the ")".
    """
    columns, cut, select = _capped_select(pg, text)
    query = f"COPY ({select} LIMIT {max_rows + 1}) TO STDOUT WITH (FORMAT csv, HEADER)"
    rows = _Rows(columns=columns)
    cut_mark = CUT_MARK.encode()
    pgconn = pg.pgconn
    with pg.cursor() as cursor, cursor.copy(query) as copy:
        # PostgreSQL sends exactly one CSV line (the header, then one per row) per message.
        writing = writer.write(bytes(copy.read()))
        # Copy.read() costs about a microsecond of wait machinery per row, as much as the
        # rest of the export; libpq's blocking PQgetCopyData keeps the loop near psql's speed
        # (it lets go of the GIL, so the watchdog can still cancel). For the same reason
        # lines go straight to the file while they fit the writer's allowance.
        read_line = pgconn.get_copy_data
        fast_write, allowance = writer.lane()
        count = seen = fast_bytes = 0
        while True:
            size, line = read_line(0)
            if size < 0:
                break
            seen += 1
            if not writing:
                continue  # past a cap: the rest is read and dropped
            if seen > max_rows:
                writer.stop(_row_cap_reason(max_rows))
                writing = False
                continue
            if size <= allowance:
                fast_write(line)
                allowance -= size
                fast_bytes += size
            else:
                writer.advance(fast_bytes)
                fast_bytes = 0
                if not writer.write(line):
                    writing = False
                    continue
                fast_write, allowance = writer.lane()
            count += 1
            if count <= PREVIEW_MAX_ROWS:
                cells = _parse_csv_line(bytes(line).decode())
                rows.preview.append([short_cell(cell) for cell in cells])
            if cut and size > cut and cut_mark in bytes(line):
                rows.cells_cut = cut
        writer.advance(fast_bytes)
        _finish_copy_out(pgconn)
    rows.count, rows.seen = count, seen
    return rows


def _finish_copy_out(pgconn: pq.abc.PGconn) -> None:
    """Collect the COPY's closing result; an error met mid-stream (e.g. a timeout) is here."""
    results = []
    while (result := pgconn.get_result()) is not None:
        results.append(result)
    for result in results:
        if result.status != pq.ExecStatus.COMMAND_OK:
            raise psycopg.errors.error_from_result(result, encoding="utf-8")


def _parse_csv_line(line: str) -> list[str | None]:
    """Parse one line of PostgreSQL CSV, where an unquoted empty field is NULL."""
    if line.endswith("\n"):
        line = line[:-1]
    cells: list[str | None] = []
    pos, end = 0, len(line)
    while True:
        if pos < end and line[pos] == '"':
            parts: list[str] = []
            pos += 1
            while True:
                close = line.index('"', pos)
                parts.append(line[pos:close])
                if line.startswith('"', close + 1):
                    parts.append('"')
                    pos = close + 2
                    continue
                pos = close + 1
                break
            cells.append("".join(parts))
        else:
            comma = line.find(",", pos)
            stop = end if comma == -1 else comma
            cells.append(line[pos:stop] or None)
            pos = stop
        if pos >= end:
            return cells
        pos += 1  # the comma


# --- messages -----------------------------------------------------------------------------


def _error_message(exc: BaseException, conn: Connection) -> str:
    """The database's own words: its primary message, plus DETAIL when it gives one."""
    if isinstance(exc, psycopg.Error):
        primary = exc.diag.message_primary
        if primary:
            detail = exc.diag.message_detail
            message = f"{primary}\nDETAIL: {detail}" if detail else primary
        else:
            message = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    else:
        message = str(exc)
    return without_secret(message, conn.password)


def _display(text: str) -> str:
    flat = " ".join(text.split())
    if len(flat) <= DISPLAY_TEXT_MAX_CHARS:
        return flat
    return flat[: DISPLAY_TEXT_MAX_CHARS - 1] + "…"


def _elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
