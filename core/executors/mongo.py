"""Run an approved MongoDB request: parse the shell text, call pymongo, stream reads to JSON lines.

Time limits: every statement runs inside `pymongo.timeout(statement_timeout_s)`. That is
pymongo's client-side operation timeout, and it is the only way pymongo offers to put
`maxTimeMS` on insert/update/delete as well as on find, aggregate, count, distinct: each command
sent carries `maxTimeMS` set to what is left of the statement's budget (so the first command of
a statement carries about `statement_timeout_s * 1000`). The same deadline bounds the client's
own waits, so a server that ignores `maxTimeMS` cannot hold a worker forever; a read's whole
export, rows written to the file included, has to fit in it. A `maxTimeMS` the user wrote can
shorten that budget, never lengthen it.

What a statement may do is checked here again, whatever the submit-time analysis said: a job
approved as read-only runs reads only, and server-side JavaScript runs only when the job
carries the instance's `allow_server_js`.

Scripts run statement by statement and stop at the first failure. MongoDB has no
cross-statement rollback here, so what already ran stays applied and is reported.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pymongo
from bson import json_util
from bson.errors import BSONError
from pymongo.database import Database
from pymongo.errors import (
    BulkWriteError,
    ConfigurationError,
    ConnectionFailure,
    OperationFailure,
    PyMongoError,
    ServerSelectionTimeoutError,
)

from core.executors.base import Connection, Job
from core.executors.connect import mongo_client
from core.executors.mongo_shell import MongoParseError, MongoStatement, parse, pymongo_call
from core.executors.results import (
    PREVIEW_MAX_ROWS,
    AuthenticationFailed,
    ExecutionError,
    ExecutionResult,
    ResultLimits,
    ResultWriter,
    StatementOutcome,
    WrittenFile,
    replace_result_file,
    short_cell,
)

NO_ROLLBACK_NOTE = "MongoDB does not roll back earlier statements of a script"
STATEMENT_TEXT_MAX_CHARS = 200
# Documents per cursor batch: few enough to keep memory flat, many enough that round trips
# do not dominate (MongoDB also caps every reply at 16 MB).
CURSOR_BATCH_SIZE = 1_000
# MongoDB's code for refused credentials (codeName AuthenticationFailed).
AUTHENTICATION_FAILED_CODE = 18
_JSON_OPTIONS = json_util.RELAXED_JSON_OPTIONS


class _StatementFailed(Exception):
    def __init__(self, message: str, affected: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.affected = affected


def execute_mongo(conn: Connection, job: Job) -> ExecutionResult:
    """Run every statement of `job.content` in order against `conn.database`."""
    started = time.monotonic()
    statements = _parse(job.content)
    _refuse_what_the_job_does_not_allow(job, statements)
    result = ExecutionResult(
        statements=[
            StatementOutcome(index=i, text=_shorten(stmt.text), kind=stmt.kind, status="not run")
            for i, stmt in enumerate(statements, start=1)
        ]
    )
    if len(statements) > 1:
        result.notes.append(NO_ROLLBACK_NOTE)
    for stmt in statements:
        for note in (*stmt.notes, *_time_limit_notes(stmt, conn)):
            if note not in result.notes:
                result.notes.append(note)
    reads_done: list[int] = []
    with _open_client(conn, job) as client:
        _check_connection(client, conn)
        database = client.get_database(conn.database)
        for stmt, outcome in zip(statements, result.statements, strict=True):
            try:
                _run_statement(database, stmt, outcome, conn, job, result)
            except _StatementFailed as failure:
                outcome.status = "failed"
                outcome.affected = failure.affected
                outcome.detail = failure.message
                if job.submission_type == "script" and NO_ROLLBACK_NOTE not in result.notes:
                    result.notes.append(NO_ROLLBACK_NOTE)
                result.elapsed_ms = _elapsed_ms(started)
                where = f"statement {outcome.index}: " if len(statements) > 1 else ""
                raise ExecutionError(f"{where}{failure.message}", partial=result) from None
            outcome.status = "ok"
            if stmt.kind == "read":
                reads_done.append(outcome.index)
    if len(reads_done) > 1:
        result.notes.append(
            f"The result holds the rows of statement {reads_done[-1]}, the last read"
        )
    result.elapsed_ms = _elapsed_ms(started)
    return result


def _parse(content: str) -> list[MongoStatement]:
    try:
        return parse(content)
    except MongoParseError as exc:
        raise ExecutionError(f"the MongoDB statements cannot be parsed: {exc}") from None


def _refuse_what_the_job_does_not_allow(job: Job, statements: list[MongoStatement]) -> None:
    """A read-only job runs reads only, and server-side JavaScript runs only where the instance
    allows it, whatever the analysis that labelled the request said."""
    for index, stmt in enumerate(statements, start=1):
        if stmt.server_js and not job.allow_server_js:
            raise ExecutionError(
                f"statement {index} ({stmt.method}) runs server-side JavaScript "
                f"({', '.join(stmt.server_js)}), which this instance does not allow"
            )
    if not job.read_only:
        return
    for index, stmt in enumerate(statements, start=1):
        if stmt.kind != "read":
            does = "writes" if stmt.kind == "write" else "changes the schema"
            raise ExecutionError(
                f"statement {index} ({stmt.method}) {does}, "
                "but the request was approved as read-only"
            )
        if stmt.server_js:
            raise ExecutionError(
                f"statement {index} ({stmt.method}) runs server-side JavaScript "
                f"({', '.join(stmt.server_js)}), but the request was approved as read-only"
            )


def _time_limit(stmt: MongoStatement, conn: Connection) -> float:
    """The statement's budget: the instance's timeout, or the user's maxTimeMS when lower."""
    limit = float(conn.statement_timeout_s)
    if stmt.max_time_ms:
        limit = min(limit, stmt.max_time_ms / 1000)
    return limit


def _time_limit_notes(stmt: MongoStatement, conn: Connection) -> list[str]:
    if stmt.max_time_ms is not None and stmt.max_time_ms > conn.statement_timeout_s * 1000:
        return [
            f"maxTimeMS {stmt.max_time_ms} is above this instance's limit of "
            f"{conn.statement_timeout_s} s; the instance's limit applies"
        ]
    return []


def _shorten(text: str) -> str:
    if len(text) <= STATEMENT_TEXT_MAX_CHARS:
        return text
    return text[: STATEMENT_TEXT_MAX_CHARS - 1] + "…"


def _elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


# --- connecting ---------------------------------------------------------------------------


def _open_client(conn: Connection, job: Job) -> pymongo.MongoClient:
    try:
        return mongo_client(
            conn, appname=f"dbquery/{job.request_uuid}", timeout_ms=conn.connect_timeout_s * 1000
        )
    except ConfigurationError as exc:
        raise ExecutionError(
            _scrub(f"cannot connect to MongoDB at {_address(conn)}: {exc}", conn)
        ) from None


def _check_connection(client: pymongo.MongoClient, conn: Connection) -> None:
    """Reach and authenticate first, so these failures happen before any statement runs."""
    try:
        with pymongo.timeout(conn.connect_timeout_s):
            client.get_database(conn.database).command("ping")
    except OperationFailure as exc:
        if exc.code == AUTHENTICATION_FAILED_CODE:
            user = f" of user {conn.username!r}" if conn.username else ""
            raise AuthenticationFailed(
                _scrub(
                    f"MongoDB at {_address(conn)} refused the credentials{user}: "
                    f"{_server_message(exc)}",
                    conn,
                )
            ) from None
        raise ExecutionError(
            _scrub(f"MongoDB at {_address(conn)}: {_server_message(exc)}", conn)
        ) from None
    except PyMongoError as exc:
        raise ExecutionError(_connection_message(exc, conn)) from None


def _address(conn: Connection) -> str:
    return f"{conn.host}:{conn.port}"


def _connection_message(exc: PyMongoError, conn: Connection) -> str:
    reason = str(exc)
    if isinstance(exc, ServerSelectionTimeoutError) or exc.timeout:
        # pymongo appends its timeouts and the whole topology description; keep the cause.
        reason = reason.split(" (configured timeouts", 1)[0].split(", Timeout:", 1)[0]
        reason = reason.removeprefix(f"{_address(conn)}: ")
        return _scrub(
            f"cannot connect to MongoDB at {_address(conn)} "
            f"within {conn.connect_timeout_s} s: {reason}",
            conn,
        )
    return _scrub(f"cannot connect to MongoDB at {_address(conn)}: {reason}", conn)


def _scrub(text: str, conn: Connection) -> str:
    """Belt and braces: no message leaves this module with the password in it."""
    if conn.password:
        text = text.replace(conn.password, "***")
    return text


def _server_message(exc: OperationFailure) -> str:
    details = exc.details or {}
    if isinstance(exc, BulkWriteError):
        errors = details.get("writeErrors") or details.get("writeConcernErrors") or [{}]
        return str(errors[0].get("errmsg") or exc)
    return str(details.get("errmsg") or exc)


def _statement_message(exc: Exception, conn: Connection) -> str:
    if isinstance(exc, PyMongoError) and exc.timeout:
        detail = (
            _server_message(exc)
            if isinstance(exc, OperationFailure)
            else str(exc).split(" (configured", 1)[0]
        )
        return _scrub(
            f"the statement did not finish within its time limit of {conn.statement_timeout_s} s "
            f"(maxTimeMS): {detail}",
            conn,
        )
    if isinstance(exc, OperationFailure):
        return _scrub(_server_message(exc), conn)
    if isinstance(exc, ConnectionFailure):
        return _connection_message(exc, conn)
    return _scrub(str(exc), conn)


# --- statements ---------------------------------------------------------------------------


def _run_statement(
    database: Database,
    stmt: MongoStatement,
    outcome: StatementOutcome,
    conn: Connection,
    job: Job,
    result: ExecutionResult,
) -> None:
    try:
        with pymongo.timeout(_time_limit(stmt, conn)):
            if stmt.kind == "read":
                outcome.rows = _run_read(database, stmt, conn, job, result)
            else:
                outcome.affected, outcome.detail = _run_write(database, stmt)
    except BulkWriteError as exc:
        # insertMany and bulkWrite stop at the first failing operation (when ordered); the
        # ones before it are applied.
        details = exc.details or {}
        inserted = int(details.get("nInserted", 0))
        if stmt.operation == "bulk_write":
            done = _bulk_counts(details)
            raise _StatementFailed(
                f"{_statement_message(exc, conn)} (applied before the error: {done})",
                affected=_bulk_affected(details),
            ) from None
        raise _StatementFailed(
            f"{_statement_message(exc, conn)} (inserted {inserted} before the error)",
            affected=inserted,
        ) from None
    except (PyMongoError, BSONError) as exc:
        raise _StatementFailed(_statement_message(exc, conn)) from None


def _call(database: Database, stmt: MongoStatement, **overrides: Any) -> Any:
    name, args, kwargs = pymongo_call(stmt)
    if stmt.target == "database":
        target: Any = database
        if stmt.collection_options:
            target = database.with_options(**stmt.collection_options)
    else:
        target = database.get_collection(stmt.collection, **stmt.collection_options)
    try:
        return getattr(target, name)(*args, **{**kwargs, **overrides})
    except (ValueError, TypeError) as exc:
        # pymongo checks arguments before sending: "update only works with $ operators", ...
        raise _StatementFailed(str(exc)) from None


def _run_write(database: Database, stmt: MongoStatement) -> tuple[int | None, str]:
    outcome = _call(database, stmt)
    operation = stmt.operation
    if operation == "aggregate":
        with outcome as cursor:
            for _ in cursor:
                pass
        return None, "the pipeline wrote its output ($out/$merge)"
    if operation == "insert_one":
        return 1, f"inserted 1 (_id {_json_text(outcome.inserted_id)})"
    if operation == "insert_many":
        return len(outcome.inserted_ids), f"inserted {len(outcome.inserted_ids)}"
    if operation in ("delete_one", "delete_many"):
        return outcome.deleted_count, f"deleted {outcome.deleted_count}"
    if operation == "bulk_write":
        details = outcome.bulk_api_result
        return _bulk_affected(details), _bulk_counts(details)
    if operation.startswith("find_one_and_"):
        if outcome is None:
            return 0, "no document matched"
        return 1, f"returned {_shorten(_json_text(outcome))}"
    if operation == "command":  # mapReduce into a collection
        return None, f"mapReduce wrote its output ({_json_text(outcome.get('result'))})"
    if operation in _DDL_DETAILS:
        return None, _DDL_DETAILS[operation](stmt, outcome)
    detail = f"matched {outcome.matched_count}, modified {outcome.modified_count}"
    upserted = 1 if outcome.upserted_id is not None else 0
    if upserted:
        detail += f", upserted 1 (_id {_json_text(outcome.upserted_id)})"
    return outcome.modified_count + upserted, detail


_DDL_DETAILS: dict[str, Callable[[MongoStatement, Any], str]] = {
    "create_index": lambda stmt, name: f"created index {name}",
    "create_indexes": lambda stmt, names: f"created indexes {', '.join(names)}",
    "drop_index": lambda stmt, _: "dropped the index",
    "drop_indexes": lambda stmt, _: "dropped every index but _id",
    "drop": lambda stmt, _: f"dropped collection {stmt.collection}",
    "rename": lambda stmt, _: f"renamed {stmt.collection} to {stmt.call_args[0]}",
    "create_collection": lambda stmt, _: (
        f"created view {stmt.call_args[0]}"
        if "viewOn" in stmt.call_kwargs
        else f"created collection {stmt.call_args[0]}"
    ),
}


def _bulk_counts(details: Mapping[str, Any]) -> str:
    return (
        f"inserted {details.get('nInserted', 0)}, matched {details.get('nMatched', 0)}, "
        f"modified {details.get('nModified', 0)}, deleted {details.get('nRemoved', 0)}, "
        f"upserted {details.get('nUpserted', 0)}"
    )


def _bulk_affected(details: Mapping[str, Any]) -> int:
    return sum(
        int(details.get(key, 0)) for key in ("nInserted", "nModified", "nRemoved", "nUpserted")
    )


def _run_read(
    database: Database,
    stmt: MongoStatement,
    conn: Connection,
    job: Job,
    result: ExecutionResult,
) -> int:
    sink = _JsonlSink(Path(job.out_dir) / f"{job.request_uuid}.jsonl", conn.max_rows, job.limits)
    shape = stmt.result
    if stmt.operation in ("find", "aggregate"):
        with _call(database, stmt, **_cursor_overrides(stmt, conn.max_rows)) as cursor:
            sink.write(cursor)
    elif shape == "cursor":  # list_indexes
        with _call(database, stmt) as cursor:
            sink.write(cursor)
    elif shape == "document":
        document = _call(database, stmt)
        sink.write([document] if document is not None else [])
    elif shape == "explain":
        plan = dict(_call(database, stmt))
        plan.pop("ok", None)
        sink.write([plan])
    elif shape == "map_reduce":
        answer = _call(database, stmt)
        sink.write(answer.get("results", answer.get("result", [])))
    elif shape == "values":
        field = stmt.call_args[0]
        sink.write({field: value} for value in _call(database, stmt))
    elif shape == "names":
        sink.write({"name": name} for name in sorted(_call(database, stmt)))
    else:  # count
        sink.write([{"count": _call(database, stmt)}])
    sink.publish(result)
    return sink.row_count


def _cursor_overrides(stmt: MongoStatement, max_rows: int) -> dict[str, int]:
    """A fixed batch size, and for find() a limit of one row past the cap.

    With a limit and no batch size pymongo asks for all remaining rows in one getMore; a
    server that does not cap replies at 16 MB would then hold the whole result in memory.
    One row past the cap is enough to know the result was cut, and no more is fetched.
    """
    _, _, kwargs = pymongo_call(stmt)
    if stmt.operation == "aggregate":
        return {} if "batchSize" in kwargs else {"batchSize": CURSOR_BATCH_SIZE}
    overrides = {
        "batch_size": min(kwargs.get("batch_size") or CURSOR_BATCH_SIZE, CURSOR_BATCH_SIZE)
    }
    limit = kwargs.get("limit", 0)
    if not 0 < limit <= max_rows:
        overrides["limit"] = max_rows + 1
    return overrides


# --- the result file ----------------------------------------------------------------------


class _JsonlSink:
    """Streams documents to a JSON lines file (extended JSON, relaxed) up to the caps.

    The shared result writer keeps memory flat, compresses a large file, stops at the row cap,
    the byte cap and the upload limit, and replaces the result file only once the read
    succeeded, so a failed read never leaves a half-written file behind.
    """

    def __init__(self, path: Path, max_rows: int, limits: ResultLimits) -> None:
        self.path = path
        self.max_rows = max_rows
        self.limits = limits
        self.row_count = 0
        self.preview: list[Mapping[str, Any]] = []
        self.written: WrittenFile | None = None

    def write(self, documents: Iterable[Mapping[str, Any]]) -> None:
        writer = ResultWriter(self.path, "jsonl", self.limits)
        try:
            self._write_lines(writer, iter(documents))
        except BaseException:
            writer.discard()
            raise
        self.written = writer.commit()

    def _write_lines(self, writer: ResultWriter, documents: Iterator[Mapping[str, Any]]) -> None:
        dumps, options = json_util.dumps, _JSON_OPTIONS
        for document in documents:
            if self.row_count == self.max_rows:
                writer.stop(f"stopped at the row cap of {self.max_rows:,} rows")
                return
            if not writer.write((dumps(document, json_options=options) + "\n").encode()):
                return
            self.row_count += 1
            if len(self.preview) < PREVIEW_MAX_ROWS:
                self.preview.append(document)

    def publish(self, result: ExecutionResult) -> None:
        columns = _columns(self.preview)
        result.columns = columns
        result.preview_rows = [
            [short_cell(_cell(document.get(column))) for column in columns]
            for document in self.preview
        ]
        if self.written is not None:
            replace_result_file(result, self.written, self.row_count)


def _columns(documents: Iterable[Mapping[str, Any]]) -> list[str]:
    """Top-level keys of the preview documents, in first-seen order."""
    seen: dict[str, None] = {}
    for document in documents:
        seen.update(dict.fromkeys(document))
    return list(seen)


def _cell(value: Any) -> Any:
    """A JSON-safe preview cell; {"$oid": "..."}, {"$date": "..."} and such become plain text."""
    converted = json.loads(json_util.dumps(value, json_options=_JSON_OPTIONS))
    if isinstance(converted, dict) and len(converted) == 1:
        ((key, inner),) = converted.items()
        if key.startswith("$") and isinstance(inner, str):
            return inner
    return converted


def _json_text(value: Any) -> str:
    cell = _cell(value)
    return cell if isinstance(cell, str) else json.dumps(cell)
