"""Run an approved request against a PostgreSQL target.

One transaction per request (a script is all or nothing), the instance's statement timeout,
its row cap, and rows streamed to a CSV file as they arrive. Plain SELECTs are exported with
COPY ... TO STDOUT (the server writes the CSV); other row-returning statements go through
loaders that hand over PostgreSQL's own text, so no value is parsed into a Python object only
to be formatted back into text, and both paths render cells the same way.
"""

from __future__ import annotations

import csv
import re
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import psycopg
import psycopg.postgres
from pglast import ast, parser
from psycopg import pq
from psycopg.adapt import AdaptersMap
from psycopg.types.string import TextLoader

from core.analysis import READ, AnalysisError, StatementInfo, analyse
from core.executors.base import Connection, Job
from core.executors.results import (
    PREVIEW_MAX_ROWS,
    AuthenticationFailed,
    ExecutionError,
    ExecutionResult,
    StatementOutcome,
)

# Rows per round trip: large enough to amortise the round trip, small enough that a batch of
# wide rows stays well inside the executor's memory budget.
BATCH_ROWS = 5_000
APPLICATION_NAME_MAX_BYTES = 63  # PostgreSQL truncates longer names (NAMEDATALEN - 1)
DISPLAY_TEXT_MAX_CHARS = 200
CURSOR_NAME = "dbquery_rows"

# libpq reports a refused login only as text (a failed connection carries no SQLSTATE).
_AUTHENTICATION_FAILURE = re.compile(
    r"authentication failed|no pg_hba\.conf entry|pg_hba\.conf rejects|"
    r"is not permitted to log in|role \".*\" does not exist|no password supplied",
)
_LIBPQ_PREFIX = re.compile(r"^.*?port \d+ failed: (?:FATAL:\s+|ERROR:\s+)?")


class _StatementTimeLimit(Exception):
    """A statement read through a cursor outlived the statement timeout across its fetches."""


@dataclass
class _Rows:
    """What a row-returning statement put in the result file."""

    columns: list[str]
    preview: list[list[Any]] = field(default_factory=list)
    count: int = 0
    truncated: bool = False


@dataclass(frozen=True)
class _Step:
    info: StatementInfo
    node: ast.Node


def execute_postgres(conn: Connection, job: Job) -> ExecutionResult:
    """Run the job in one transaction; raise ExecutionError (with what ran) if anything fails."""
    started = time.monotonic()
    steps = _plan(job)
    outcomes = [
        StatementOutcome(index=i, text=_display(s.info.text), kind=s.info.kind, status="not run")
        for i, s in enumerate(steps, start=1)
    ]
    result = ExecutionResult(statements=outcomes)
    out_path = job.out_dir / f"{job.request_uuid}.csv"
    pg = _connect(conn, job)
    try:
        _start_transaction(pg, conn, job.read_only)
        _run_steps(pg, steps, outcomes, result, conn, out_path)
        pg.commit()
    except (psycopg.Error, _StatementTimeLimit) as exc:
        _rollback_quietly(pg)
        out_path.unlink(missing_ok=True)
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
    """Split and classify with PostgreSQL's parser (the same analysis the submission passed)."""
    try:
        analysis = analyse("postgresql", job.content, job.submission_type)
    except AnalysisError as exc:
        raise ExecutionError(str(exc)) from None
    return [_Step(info, parser.parse_sql(info.text)[0].stmt) for info in analysis.statements]


def _run_steps(
    pg: psycopg.Connection,
    steps: list[_Step],
    outcomes: list[StatementOutcome],
    result: ExecutionResult,
    conn: Connection,
    out_path: Path,
) -> None:
    last_with_rows: int | None = None
    for number, (step, outcome) in enumerate(zip(steps, outcomes, strict=True), start=1):
        try:
            rows = _run_statement(pg, step, outcome, conn, out_path)
        except (psycopg.Error, _StatementTimeLimit) as exc:
            outcome.status = "failed"
            outcome.detail = _error_message(exc, conn)
            raise
        outcome.status = "ok"
        if rows is not None:
            outcome.rows = rows.count
            # A later row-returning statement replaces the file: a script's result is its
            # last read, earlier ones report their row counts.
            _attach_rows(result, rows, out_path, conn.max_rows)
            last_with_rows = number
    if last_with_rows is not None and sum(o.rows is not None for o in outcomes) > 1:
        result.notes.append(
            f"the result holds the rows of statement {last_with_rows}; "
            "earlier statements report their row counts only"
        )


def _attach_rows(result: ExecutionResult, rows: _Rows, out_path: Path, max_rows: int) -> None:
    result.columns = rows.columns
    result.preview_rows = rows.preview
    result.row_count = rows.count
    result.truncated = rows.truncated
    result.file_path = out_path
    result.file_format = "csv"
    result.notes = [n for n in result.notes if not n.startswith("stopped at the row cap")]
    if rows.truncated:
        result.notes.append(f"stopped at the row cap of {max_rows:,} rows")


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


def _sslmode(conn: Connection) -> dict[str, str]:
    if conn.tls is None:
        return {}  # libpq's default, "prefer"
    return {"sslmode": "require" if conn.tls else "disable"}


def _application_name(request_uuid: str) -> str:
    raw = f"dbquery/{request_uuid}".encode()[:APPLICATION_NAME_MAX_BYTES]
    return raw.decode("utf-8", errors="ignore")


def _connect(conn: Connection, job: Job) -> psycopg.Connection:
    try:
        return psycopg.connect(
            host=conn.host,
            port=conn.port,
            dbname=conn.database,
            user=conn.username,
            password=conn.password,
            connect_timeout=conn.connect_timeout_s,
            application_name=_application_name(job.request_uuid),
            client_encoding="utf8",
            context=_raw_text_adapters(),
            # Server-side prepared statements would outlive nothing here and break poolers.
            prepare_threshold=None,
            **_sslmode(conn),
        )
    except psycopg.Error as exc:
        raise _connection_failure(conn, exc) from None


def _connection_failure(conn: Connection, exc: psycopg.Error) -> ExecutionError:
    first_line = (str(exc).strip().splitlines() or ["connection failed"])[0]
    reason = _without_secret(_LIBPQ_PREFIX.sub("", first_line), conn.password)
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
    pg.execute("; ".join(settings))


def _rollback_quietly(pg: psycopg.Connection) -> None:
    try:
        pg.rollback()
    except psycopg.Error:
        # The connection is already broken: the server rolls back when it goes away.
        return


# --- running statements -------------------------------------------------------------------


def _declarable(node: ast.Node) -> bool:
    """A SELECT that a server-side cursor (DECLARE ... CURSOR FOR) accepts."""
    if not isinstance(node, ast.SelectStmt) or node.intoClause is not None:
        return False
    ctes = node.withClause.ctes if node.withClause else ()
    return all(isinstance(c.ctequery, ast.SelectStmt) for c in ctes or ())


def _run_statement(
    pg: psycopg.Connection,
    step: _Step,
    outcome: StatementOutcome,
    conn: Connection,
    out_path: Path,
) -> _Rows | None:
    if step.info.kind == READ and _declarable(step.node):
        # A plain SELECT streams fastest as CSV formatted by the server.
        return _copy_select(pg, step.info.text, out_path, conn.max_rows)
    deadline = time.monotonic() + conn.statement_timeout_s
    if _declarable(step.node):
        # SELECT ... FOR UPDATE/SHARE: a server-side cursor keeps the client's memory flat.
        with pg.cursor(name=CURSOR_NAME) as server_cursor:
            server_cursor.execute(step.info.text)
            return _write_rows(server_cursor, out_path, conn.max_rows, deadline)
    with pg.cursor() as cursor:
        cursor.execute(step.info.text)
        rows = None
        if cursor.description is not None:
            rows = _write_rows(cursor, out_path, conn.max_rows, deadline)
        is_dml = isinstance(
            step.node, (ast.InsertStmt, ast.UpdateStmt, ast.DeleteStmt, ast.MergeStmt)
        )
        if cursor.rowcount >= 0 and (is_dml or rows is None):
            outcome.affected = cursor.rowcount
        return rows


def _write_rows(
    cursor: psycopg.Cursor[Any], out_path: Path, max_rows: int, deadline: float
) -> _Rows:
    """Stream a statement's rows to the CSV file in batches, up to the row cap."""
    rows = _Rows(columns=[column.name for column in cursor.description or ()])
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with out_path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(rows.columns)
        while batch := cursor.fetchmany(BATCH_ROWS):
            room = max_rows - rows.count
            if len(batch) > room:
                batch = batch[:room]
                rows.truncated = True
            writer.writerows(batch)
            if len(rows.preview) < PREVIEW_MAX_ROWS:
                rows.preview.extend(list(r) for r in batch[: PREVIEW_MAX_ROWS - len(rows.preview)])
            rows.count += len(batch)
            if rows.truncated:
                break
            # Each FETCH is its own statement for the server's timeout; bound the whole read.
            if time.monotonic() > deadline:
                raise _StatementTimeLimit("canceling statement due to statement timeout")
    return rows


def _copy_select(pg: psycopg.Connection, text: str, out_path: Path, max_rows: int) -> _Rows:
    """Export a SELECT with COPY ... TO STDOUT, writing each CSV line as it arrives.

    LIMIT max_rows + 1 lets the server stop at the cap while still telling whether it cut.
    The newlines keep a trailing line comment in the statement from swallowing the ")".
    """
    query = (
        f"COPY (SELECT * FROM (\n{text}\n) AS dbquery_result LIMIT {max_rows + 1}) "
        "TO STDOUT WITH (FORMAT csv, HEADER)"
    )
    out_path.parent.mkdir(parents=True, exist_ok=True)
    pgconn = pg.pgconn
    with pg.cursor() as cursor, cursor.copy(query) as copy, out_path.open("wb") as out:
        # PostgreSQL sends exactly one CSV line (the header, then one per row) per message.
        header = copy.read()
        out.write(header)
        rows = _Rows(columns=[c or "" for c in _parse_csv_line(bytes(header).decode())])
        # Copy.read() costs about a microsecond of wait machinery per row, as much as the
        # rest of the export; libpq's blocking PQgetCopyData keeps the loop near psql's speed.
        read_line, write = pgconn.get_copy_data, out.write
        count = 0
        while True:
            size, line = read_line(0)
            if size < 0:
                break
            count += 1
            if count <= max_rows:
                write(line)
                if count <= PREVIEW_MAX_ROWS:
                    rows.preview.append(_parse_csv_line(bytes(line).decode()))
        _finish_copy_out(pgconn)
    rows.count = min(count, max_rows)
    rows.truncated = count > max_rows
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
    return _without_secret(message, conn.password)


def _without_secret(text: str, secret: str | None) -> str:
    # Neither libpq nor the server echoes a password; this guards against a future driver
    # message that would. Very short secrets are skipped: masking "a" would garble the text.
    if secret and len(secret) >= 4:
        return text.replace(secret, "***")
    return text


def _display(text: str) -> str:
    flat = " ".join(text.split())
    if len(flat) <= DISPLAY_TEXT_MAX_CHARS:
        return flat
    return flat[: DISPLAY_TEXT_MAX_CHARS - 1] + "…"


def _elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
