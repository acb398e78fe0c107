"""Cost estimates at submit: what the target's planner expects a request to touch, never running it.

PostgreSQL: `EXPLAIN (FORMAT JSON)` of each statement, never ANALYZE, inside a READ ONLY
transaction with a short statement timeout, as the request's own target user. Estimated rows
are the rows returned for a read and the rows affected for INSERT/UPDATE/DELETE/MERGE (the
input of the ModifyTable node); sequential scans are reported with the table's size from
`pg_class.reltuples`. Statements EXPLAIN cannot take (DDL, utility commands) are skipped.

MongoDB: the `explain` command at `queryPlanner` verbosity (the only verbosity that runs
nothing) for find, findOne, aggregate, countDocuments, distinct, update and delete, plus the
collection's document count from `collStats`. A collection scan's estimate is the whole
collection; an index scan names the index. A server that answers explain without a plan
gets "not available" for that statement rather than a guess.

An estimate never blocks a submission: a failure or a timeout is reported as such.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from core.executors.base import Connection
from core.executors.connect import connect_postgres, failure_reason, mongo_client, without_secret

DEFAULT_TIMEOUT_S = 2.0
# A sequential scan is worth telling the approver about from this many rows on.
DEFAULT_LARGE_TABLE_ROWS = 100_000
# Scripts can hold thousands of statements; the approver needs the expensive ones, and the
# submit path cannot wait for all of them.
MAX_STATEMENTS = 50

OK = "ok"
FAILED = "failed"
UNAVAILABLE = "unavailable"

NO_ESTIMATE_FOR_KIND = "no estimate for this kind"
NOT_PLANNED = (
    "no estimate: not planned before approval, because it calls functions dbquery cannot "
    "vouch for and planning may run them"
)


@dataclass(frozen=True)
class FullScan:
    table: str
    rows: int | None  # the table's size (reltuples / collection count); None when unknown


@dataclass(frozen=True)
class StatementEstimate:
    index: int  # 1-based position in the request
    rows: int | None = None  # returned (read) or affected (write); None when unknown
    affects_rows: bool = False  # rows are rows affected (DML), not returned
    cost: float | None = None  # PostgreSQL's total cost
    full_scans: tuple[FullScan, ...] = ()
    indexes: tuple[str, ...] = ()
    note: str | None = None  # why there is no estimate ("no estimate for this kind", ...)
    upper_bound: bool = False  # rows is the most it can be (a collection scan), not a guess


@dataclass(frozen=True)
class Estimate:
    status: str  # ok | failed | unavailable
    statements: tuple[StatementEstimate, ...] = ()
    message: str | None = None  # why it failed or is not available
    large_table_rows: int = DEFAULT_LARGE_TABLE_ROWS
    skipped_statements: int = 0  # beyond MAX_STATEMENTS
    unit: str = "row"  # row | document

    @property
    def rows_affected(self) -> int | None:
        """Sum of the estimated rows affected by the writes; None when none is estimated."""
        values = [s.rows for s in self.statements if s.affects_rows and s.rows is not None]
        return sum(values) if values else None

    @property
    def rows_returned(self) -> int | None:
        values = [s.rows for s in self.statements if not s.affects_rows and s.rows is not None]
        return max(values) if values else None

    @property
    def rows(self) -> int | None:
        """The figure policies compare: rows affected when anything writes, else rows returned.

        None when any statement could not be estimated: an unknown never passes for small.
        """
        if self.status != OK or self.skipped_statements:
            return None
        if any(s.rows is None and s.note != NO_ESTIMATE_FOR_KIND for s in self.statements):
            return None
        affected = self.rows_affected
        return affected if affected is not None else self.rows_returned

    @property
    def large_scans(self) -> tuple[FullScan, ...]:
        seen: dict[str, FullScan] = {}
        for statement in self.statements:
            for scan in statement.full_scans:
                if scan.rows is not None and scan.rows >= self.large_table_rows:
                    seen.setdefault(scan.table, scan)
        return tuple(seen.values())

    def _unit(self, count: int) -> str:
        return self.unit if count == 1 else f"{self.unit}s"

    @property
    def cost(self) -> float | None:
        values = [s.cost for s in self.statements if s.cost is not None]
        return sum(values) if values else None

    def summary(self) -> str:
        """One line: '~12,400 rows affected · full scan of `orders` (1.2M rows)'."""
        if self.status == FAILED:
            return f"no estimate: {self.message}" if self.message else "no estimate"
        if self.status == UNAVAILABLE:
            return (
                f"estimate not available: {self.message}"
                if self.message
                else ("estimate not available")
            )
        parts: list[str] = []
        affected, returned = self.rows_affected, self.rows_returned
        bound = any(s.upper_bound for s in self.statements)
        about = "up to " if bound else "~"
        if affected is not None:
            parts.append(f"{about}{affected:,} {self._unit(affected)} affected")
        if returned is not None and (affected is None or returned):
            parts.append(f"{about}{returned:,} {self._unit(returned)} returned")
        for scan in self.large_scans:
            parts.append(f"full scan of `{scan.table}` ({_compact(scan.rows or 0)} {self.unit}s)")
        indexes = list(dict.fromkeys(i for s in self.statements for i in s.indexes))
        if indexes and self.unit == "document":
            parts.append("index " + ", ".join(f"`{i}`" for i in indexes))
        if self.cost is not None:
            parts.append(f"cost {self.cost:,.0f}")
        unknown = [s for s in self.statements if s.rows is None and s.note != NO_ESTIMATE_FOR_KIND]
        if unknown and len(self.statements) == 1:
            parts.append(unknown[0].note or "rows not estimated")
        elif unknown:
            parts.append(f"{len(unknown)} statement{_s(len(unknown))} not estimated")
        skipped = sum(1 for s in self.statements if s.note == NO_ESTIMATE_FOR_KIND)
        if skipped:
            parts.append(f"{NO_ESTIMATE_FOR_KIND} ({skipped} statement{_s(skipped)})")
        if self.skipped_statements:
            parts.append(
                f"{self.skipped_statements} more statement{_s(self.skipped_statements)}"
                " not estimated"
            )
        return " · ".join(parts) if parts else NO_ESTIMATE_FOR_KIND


def failed(message: str, large_table_rows: int = DEFAULT_LARGE_TABLE_ROWS) -> Estimate:
    return Estimate(status=FAILED, message=message, large_table_rows=large_table_rows)


def _s(count: int) -> str:
    return "" if count == 1 else "s"


def _compact(count: int) -> str:
    """1234 -> '1,234'; 1_200_000 -> '1.2M'; 45_000 -> '45K'."""
    for threshold, size, suffix in (
        (1_000_000_000, 1_000_000_000, "B"),
        (1_000_000, 1_000_000, "M"),
        (10_000, 1_000, "K"),
    ):
        if count >= threshold:
            value = count / size
            text = f"{value:.1f}".removesuffix(".0") if value < 100 else f"{value:.0f}"
            return f"{text}{suffix}"
    return f"{count:,}"


def estimate(
    conn: Connection,
    database_type: str,
    content: str,
    submission_type: str = "query",
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    large_table_rows: int = DEFAULT_LARGE_TABLE_ROWS,
    analysis: Any = None,
) -> Estimate:
    """The planner's view of `content` on the target; a failure comes back as a failed Estimate.

    `analysis` is the submission's own (core.analysis.Analysis), when the caller has it.
    """
    from core.analysis import AnalysisError, analyse

    if analysis is None:
        try:
            analysis = analyse(database_type, content, submission_type)
        except AnalysisError as exc:
            return failed(str(exc), large_table_rows)
    if database_type == "postgresql":
        return _estimate_postgres(conn, analysis, timeout_s, large_table_rows)
    return _estimate_mongo(conn, content, timeout_s, large_table_rows)


# --- PostgreSQL ---------------------------------------------------------------------------

# The statements EXPLAIN accepts; anything else (DDL, utility commands) gets no estimate.
_EXPLAINABLE = ("SelectStmt", "InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt")
_DML = ("InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt")
_INDEX_NODES = ("Index Scan", "Index Only Scan", "Bitmap Index Scan")


def _explain_text(statement_text: str) -> str | None:
    """`EXPLAIN (FORMAT JSON) <statement>`, or None when the statement cannot be explained.

    The combined text is parsed again and must be exactly one EXPLAIN without ANALYZE, so no
    text, however crafted, can turn the estimate into an execution.
    """
    from pglast import ast, parser

    try:
        (raw,) = parser.parse_sql(statement_text)
    except Exception:  # pglast raises ParseError, and ValueError for several statements
        return None
    node = raw.stmt
    if type(node).__name__ not in _EXPLAINABLE:
        return None
    if isinstance(node, ast.SelectStmt) and node.intoClause is not None:
        return None  # SELECT INTO creates a table
    # The new line keeps a trailing line comment from swallowing anything after it.
    text = f"EXPLAIN (FORMAT JSON) {statement_text}\n"
    try:
        (check,) = parser.parse_sql(text)
    except Exception:
        return None
    stmt = check.stmt
    if not isinstance(stmt, ast.ExplainStmt) or any(
        isinstance(option, ast.DefElem) and option.defname != "format"
        for option in stmt.options or ()
    ):
        return None
    return text


def _estimate_postgres(conn: Connection, analysis: Any, timeout_s: float, large: int) -> Estimate:
    import psycopg

    statements = analysis.statements[:MAX_STATEMENTS]
    skipped = len(analysis.statements) - len(statements)
    deadline = time.monotonic() + timeout_s
    try:
        pg = connect_postgres(
            conn,
            application_name="dbquery/estimate",
            # libpq waits at least 2 s whatever it is given.
            connect_timeout_s=max(2, int(timeout_s + 0.999)),
            autocommit=True,
            prepare_threshold=None,
        )
    except psycopg.Error as exc:
        reason = failure_reason(exc, conn)
        return failed(f"cannot connect to {conn.host}:{conn.port}: {reason}", large)
    try:
        results: list[StatementEstimate] = []
        with pg.transaction():
            timeout_ms = max(1, int(timeout_s * 1000))
            pg.execute(f"SET TRANSACTION READ ONLY; SET LOCAL statement_timeout = {timeout_ms}")
            for index, info in enumerate(statements, start=1):
                if time.monotonic() > deadline:
                    return failed(f"timed out after {timeout_s:g} s", large)
                if info.calls_unlisted:
                    results.append(StatementEstimate(index=index, note=NOT_PLANNED))
                    continue
                results.append(_explain_one(pg, index, info.text, large))
            # Nothing is kept: the transaction only ever held plans.
            raise _Discard
    except _Discard:
        pass
    except psycopg.errors.QueryCanceled:
        return failed(f"timed out after {timeout_s:g} s", large)
    except psycopg.Error as exc:
        return failed(without_secret(_pg_message(exc), conn.password), large)
    finally:
        pg.close()
    return Estimate(
        status=OK,
        statements=tuple(results),
        large_table_rows=large,
        skipped_statements=skipped,
    )


class _Discard(Exception):
    """Leaves the estimate's transaction by rolling it back."""


def _pg_message(exc: Exception) -> str:
    diag = getattr(exc, "diag", None)
    primary = getattr(diag, "message_primary", None)
    return primary or (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _explain_one(pg: Any, index: int, text: str, large: int) -> StatementEstimate:
    import psycopg

    query = _explain_text(text)
    if query is None:
        return StatementEstimate(index=index, note=NO_ESTIMATE_FOR_KIND)
    try:
        # A savepoint per statement: one that cannot be planned (a table an earlier statement
        # of the script creates) leaves the others their estimates.
        with pg.transaction():
            plan = pg.execute(query).fetchone()[0][0]["Plan"]
            sizes = _table_sizes(pg, plan)
    except psycopg.errors.QueryCanceled:
        raise
    except psycopg.Error as exc:
        return StatementEstimate(index=index, note=f"no estimate: {_pg_message(exc)}")
    is_dml = plan.get("Node Type") == "ModifyTable"
    if is_dml:
        children = plan.get("Plans") or [{}]
        rows = int(children[0].get("Plan Rows", 0))
    else:
        rows = int(plan.get("Plan Rows", 0))
    scans = tuple(
        FullScan(_qualified(node), sizes.get(_qualified(node)))
        for node in _plan_nodes(plan)
        if node.get("Node Type") == "Seq Scan"
    )
    indexes = tuple(
        dict.fromkeys(
            node["Index Name"]
            for node in _plan_nodes(plan)
            if node.get("Node Type") in _INDEX_NODES and node.get("Index Name")
        )
    )
    return StatementEstimate(
        index=index,
        rows=rows,
        affects_rows=is_dml,
        cost=float(plan.get("Total Cost", 0.0)),
        full_scans=scans,
        indexes=indexes,
    )


def _plan_nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans") or ():
        yield from _plan_nodes(child)


def _qualified(node: dict[str, Any]) -> str:
    schema, name = node.get("Schema"), node.get("Relation Name", "?")
    return name if schema in (None, "public") else f"{schema}.{name}"


def _table_sizes(pg: Any, plan: dict[str, Any]) -> dict[str, int | None]:
    """reltuples of each sequentially scanned table (-1, never analysed, becomes None)."""
    sizes: dict[str, int | None] = {}
    for node in _plan_nodes(plan):
        if node.get("Node Type") != "Seq Scan":
            continue
        name = _qualified(node)
        if name in sizes:
            continue
        row = pg.execute(
            "SELECT c.reltuples FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = %s AND c.relname = %s",
            (node.get("Schema") or "public", node.get("Relation Name")),
        ).fetchone()
        sizes[name] = int(row[0]) if row is not None and row[0] >= 0 else None
    return sizes


# --- MongoDB ------------------------------------------------------------------------------

# nx-27017 (MongoDB over SQLite) answers find's explain with SQLite's plan lines.
_SQLITE_SCAN = re.compile(r"^SCAN (\S+)$")
_SQLITE_INDEX = re.compile(r"USING (?:COVERING )?INDEX (\S+)")


_UPDATES = ("update_one", "update_many", "replace_one")
_DELETES = ("delete_one", "delete_many")
_SINGLE = ("find_one", "update_one", "replace_one", "delete_one")


def _document(value: Any) -> Any:
    """pymongo's [(key, direction), ...] for sort and hint, as the document a command takes."""
    if isinstance(value, list) and all(isinstance(p, tuple) and len(p) == 2 for p in value):
        return dict(value)
    return value


def explain_command(stmt: Any) -> dict[str, Any] | None:
    """The explain command for a parsed shell statement, or None when it takes none.

    Built from the pymongo call the executor would make, so it explains exactly that. Only
    `queryPlanner` verbosity: the other verbosities run the statement to time it.
    """
    from core.executors.mongo_shell import pymongo_call

    if not getattr(stmt, "collection", None):
        return None
    operation, args, kwargs = pymongo_call(stmt)
    coll = stmt.collection
    matching = {key: _document(kwargs[key]) for key in ("hint", "collation") if key in kwargs}
    inner: dict[str, Any]
    if operation in ("find", "find_one"):
        inner = {"find": coll, "filter": args[0] if args else {}}
        if len(args) > 1 and args[1]:
            inner["projection"] = args[1]
        for key in ("sort", "limit", "skip"):
            if kwargs.get(key):
                inner[key] = _document(kwargs[key])
        if operation == "find_one":
            inner["limit"] = 1
        inner.update(matching)
    elif operation == "aggregate":
        inner = {"aggregate": coll, "pipeline": list(args[0]), "cursor": {}, **matching}
    elif operation == "count_documents":
        inner = {"count": coll, "query": args[0] if args else {}, **matching}
    elif operation == "distinct":
        inner = {"distinct": coll, "key": args[0], **matching}
        if len(args) > 1 and args[1]:
            inner["query"] = args[1]
    elif operation in _UPDATES:
        update: dict[str, Any] = {"q": args[0], "u": args[1], "multi": operation == "update_many"}
        if kwargs.get("upsert"):
            update["upsert"] = True
        if kwargs.get("array_filters"):
            update["arrayFilters"] = kwargs["array_filters"]
        update.update(matching)
        inner = {"update": coll, "updates": [update]}
    elif operation in _DELETES:
        delete = {"q": args[0], "limit": 1 if operation == "delete_one" else 0, **matching}
        inner = {"delete": coll, "deletes": [delete]}
    else:
        return None
    return {"explain": inner, "verbosity": "queryPlanner"}


def _estimate_mongo(conn: Connection, content: str, timeout_s: float, large: int) -> Estimate:
    import pymongo
    from pymongo.errors import PyMongoError

    from core.executors.mongo_shell import parse

    statements = parse(content)
    shown = statements[:MAX_STATEMENTS]
    timeout_ms = max(1, int(timeout_s * 1000))
    try:
        client: pymongo.MongoClient = mongo_client(
            conn, appname="dbquery/estimate", timeout_ms=timeout_ms
        )
    except PyMongoError as exc:
        return failed(without_secret(f"cannot connect to MongoDB: {exc}", conn.password), large)
    results: list[StatementEstimate] = []
    try:
        with client, pymongo.timeout(timeout_s):
            database = client.get_database(conn.database)
            counts: dict[str, int | None] = {}
            for index, stmt in enumerate(shown, start=1):
                results.append(_mongo_statement(database, index, stmt, counts))
    except PyMongoError as exc:
        if exc.timeout:
            return failed(f"timed out after {timeout_s:g} s", large)
        text = str(exc).split(" (configured timeouts", 1)[0].split(", Timeout:", 1)[0]
        return failed(without_secret(text, conn.password), large)
    return Estimate(
        status=OK,
        statements=tuple(results),
        large_table_rows=large,
        skipped_statements=len(statements) - len(shown),
        unit="document",
    )


def _collection_count(database: Any, collection: str, counts: dict[str, int | None]) -> int | None:
    from pymongo.errors import OperationFailure

    if collection not in counts:
        try:
            stats = database.command({"collStats": collection})
            count = stats.get("count")
            counts[collection] = int(count) if isinstance(count, (int, float)) else None
        except OperationFailure:
            try:
                counts[collection] = int(
                    database.get_collection(collection).estimated_document_count()
                )
            except OperationFailure:
                counts[collection] = None
    return counts[collection]


def _mongo_statement(
    database: Any, index: int, stmt: Any, counts: dict[str, int | None]
) -> StatementEstimate:
    from pymongo.errors import OperationFailure

    from core.executors.mongo_shell import pymongo_call

    operation, args, _ = pymongo_call(stmt)
    if operation == "insert_one":
        return StatementEstimate(index=index, rows=1, affects_rows=True)
    if operation == "insert_many" and args and isinstance(args[0], (list, tuple)):
        return StatementEstimate(index=index, rows=len(args[0]), affects_rows=True)
    if operation == "estimated_document_count":
        return StatementEstimate(index=index, rows=1)
    command = explain_command(stmt)
    if command is None:
        return StatementEstimate(index=index, note=NO_ESTIMATE_FOR_KIND)
    writes = operation in _UPDATES + _DELETES
    try:
        answer = database.command(command)
    except OperationFailure as exc:
        message = str((exc.details or {}).get("errmsg") or exc)
        return StatementEstimate(
            index=index, affects_rows=writes, note=f"estimate not available: {message}"
        )
    plan = (answer.get("queryPlanner") or _aggregate_planner(answer) or {}).get("winningPlan")
    scan, indexes = _plan_shape(plan, stmt.collection)
    if scan is None and not indexes:
        return StatementEstimate(
            index=index,
            affects_rows=writes,
            note="estimate not available (the server gave no plan)",
        )
    total = _collection_count(database, stmt.collection, counts)
    note = None if scan else "rows not estimated (index scan)"
    rows: int | None = total if scan else None  # a collection scan may touch every document
    if operation == "count_documents":
        rows = 1
    elif operation in _SINGLE:
        rows = 0 if total == 0 else 1
    elif operation == "find":
        limit = command["explain"].get("limit")
        if isinstance(limit, int) and limit > 0:
            rows = limit if rows is None else min(rows, limit)
    return StatementEstimate(
        index=index,
        rows=rows,
        affects_rows=writes,
        full_scans=(FullScan(stmt.collection, total),) if scan else (),
        indexes=tuple(indexes),
        upper_bound=bool(scan) and rows == total and operation != "count_documents",
        note=note if rows is None else None,
    )


def _aggregate_planner(answer: dict[str, Any]) -> dict[str, Any] | None:
    """Older servers put an aggregate's plan under stages[0].$cursor."""
    for stage in answer.get("stages") or ():
        cursor = stage.get("$cursor") if isinstance(stage, dict) else None
        if isinstance(cursor, dict) and isinstance(cursor.get("queryPlanner"), dict):
            return cursor["queryPlanner"]
    return None


def _plan_shape(plan: Any, collection: str) -> tuple[bool | None, list[str]]:
    """(collection scan?, indexes used) from a winning plan; (None, []) when it says nothing."""
    if isinstance(plan, list):
        scan: bool | None = None
        indexes: list[str] = []
        for line in plan:
            detail = str(line.get("detail", "")) if isinstance(line, dict) else ""
            if (match := _SQLITE_SCAN.match(detail)) and match.group(1) == collection:
                scan = True
            elif detail.startswith(f"SEARCH {collection} ") and (
                index := _SQLITE_INDEX.search(detail)
            ):
                indexes.append(index.group(1))
                scan = scan or False
        return scan, indexes
    if not isinstance(plan, dict):
        return None, []
    stages = list(_stages(plan))
    names = {stage.get("stage") for stage in stages}
    indexes = [s["indexName"] for s in stages if s.get("stage") == "IXSCAN" and s.get("indexName")]
    if "COLLSCAN" in names:
        return True, indexes
    if "IDHACK" in names and not indexes:
        indexes = ["_id_"]
    if indexes or names & {"EXPRESS_IXSCAN", "EXPRESS_CLUSTERED_IXSCAN", "COUNT_SCAN"}:
        return False, indexes
    return None, []


def _stages(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for key in ("inputStage", "queryPlan"):
        child = plan.get(key)
        if isinstance(child, dict):
            yield from _stages(child)
    for child in plan.get("inputStages") or ():
        if isinstance(child, dict):
            yield from _stages(child)
