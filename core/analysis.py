"""Submit-time analysis: parse what a person wants to run, classify it, and refuse what cannot run.

PostgreSQL text is parsed by PostgreSQL's own parser (pglast), so a statement is split,
classified and located exactly as the server would see it. MongoDB text is parsed by the
shell-syntax parser in core.executors.mongo_shell.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pglast import ast, parser
from pglast.enums import (
    AlterTableType,
    DiscardMode,
    ObjectType,
    ReindexObjectType,
    TransactionStmtKind,
    VariableSetKind,
)

from core.errors import DbqueryError

READ = "read"
WRITE = "write"
DDL = "ddl"
ADMIN = "admin"  # acts on the server itself: other sessions, server files, settings, large objects

# The most serious kind wins when a request mixes statements.
KIND_ORDER = (READ, WRITE, DDL, ADMIN)

MULTIPLE_STATEMENTS_WARNING = "more than one statement in a query"


@dataclass(frozen=True)
class StatementInfo:
    text: str
    kind: str  # read | write | ddl
    tables: tuple[str, ...]
    line: int  # 1-based line of the statement's first token
    # Why the statement is not a read, each in words the approver sees
    # (e.g. "calls pg_terminate_backend()", "writes to reports.daily through $out").
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class Analysis:
    statements: tuple[StatementInfo, ...]
    warnings: tuple[str, ...]

    @property
    def kind(self) -> str:
        return max((s.kind for s in self.statements), key=KIND_ORDER.index, default=READ)

    @property
    def reasons(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for statement in self.statements:
            seen.update(dict.fromkeys(statement.reasons))
        return tuple(seen)

    @property
    def tables(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for statement in self.statements:
            seen.update(dict.fromkeys(statement.tables))
        return tuple(seen)

    @property
    def read_only(self) -> bool:
        return self.kind == READ


class AnalysisError(DbqueryError):
    """The submission cannot run. `message` is the reason; str() adds where, when known."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None) -> None:
        super().__init__(message)
        self.line = line
        self.column = column

    def __str__(self) -> str:
        if self.line is None:
            return self.message
        where = (
            f"line {self.line}"
            if self.column is None
            else (f"line {self.line}, column {self.column}")
        )
        return f"{self.message} ({where})"


def analyse(
    database_type: str,
    content: str,
    submission_type: str = "query",
    *,
    allow_server_js: bool = False,
) -> Analysis:
    """Parse and classify `content`; raise AnalysisError when it cannot or must not run.

    `allow_server_js` is the MongoDB instance's opt-in to server-side JavaScript.
    """
    if database_type == "postgresql":
        statements, warnings = _analyse_postgres(content)
    elif database_type == "mongodb":
        statements, warnings = _analyse_mongo(content, allow_server_js)
    else:
        raise ValueError(f"unsupported database type {database_type!r}")
    if submission_type == "query" and len(statements) > 1:
        warnings.append(MULTIPLE_STATEMENTS_WARNING)
    return Analysis(statements=tuple(statements), warnings=tuple(warnings))


def nothing_to_run() -> AnalysisError:
    return AnalysisError("nothing to run: the text is empty or holds only comments")


def _position(content: str, index: int) -> tuple[int, int]:
    """1-based line and column of a character index."""
    return _LineIndex(content).position(index)


class _LineIndex:
    """Line starts found once, so positioning every statement of a long script stays linear."""

    def __init__(self, content: str) -> None:
        self.starts = [0, *(match.end() for match in re.finditer("\n", content))]

    def position(self, index: int) -> tuple[int, int]:
        line = bisect.bisect_right(self.starts, index)
        return line, index - self.starts[line - 1] + 1


# --- PostgreSQL ---------------------------------------------------------------------------


def _analyse_postgres(content: str) -> tuple[list[StatementInfo], list[str]]:
    raw_statements = _parse_postgres(content)
    if not raw_statements:
        raise nothing_to_run()
    statements: list[StatementInfo] = []
    warnings: list[str] = []
    lines = _LineIndex(content)
    for raw in raw_statements:
        node = raw.stmt
        line, column = lines.position(raw.stmt_location)
        reason = _refusal(node)
        if reason:
            raise AnalysisError(reason, line, column)
        statements.append(
            StatementInfo(
                text=_statement_text(content, raw),
                kind=_classify(node),
                tables=_tables(node),
                line=line,
            )
        )
        warnings.extend(_warnings(node))
    return statements, warnings


def _parse_postgres(content: str) -> tuple[ast.RawStmt, ...]:
    try:
        return parser.parse_sql(content)
    except parser.ParseError as exc:
        message, index = exc.args[0], exc.args[1]
        if index is None and message.endswith("at end of input"):
            # PostgreSQL points one past the last character; show the end of the text.
            index = len(content.rstrip())
        if index is None:
            raise AnalysisError(message) from None
        line, column = _position(content, index)
        raise AnalysisError(message, line, column) from None


def _statement_text(content: str, raw: ast.RawStmt) -> str:
    # stmt_len 0 means "up to the end of the text" (the last statement without a semicolon).
    end = raw.stmt_location + raw.stmt_len if raw.stmt_len else len(content)
    return content[raw.stmt_location : end].strip()


def _walk(node: Any) -> Iterator[ast.Node]:
    """Every AST node under `node`, itself included, depth first."""
    if isinstance(node, (list, tuple)):
        for item in node:
            yield from _walk(item)
    elif isinstance(node, ast.Node):
        yield node
        for slot in type(node).__slots__:
            yield from _walk(getattr(node, slot, None))


def _dotted(names: Any) -> str:
    return ".".join(n.sval for n in names if isinstance(n, ast.String))


# Refusals ----------------------------------------------------------------------------------

_IN_OWN_TRANSACTION = (
    "every request runs in a single transaction that dbquery commits only when all "
    "statements succeed"
)

# Settings that would undo a limit dbquery sets for the request, or change who it runs as.
_PROTECTED_SETTINGS = {
    "statement_timeout": "the instance's statement timeout applies to every request",
    "transaction_read_only": "read-only requests must stay read-only",
    "default_transaction_read_only": "read-only requests must stay read-only",
    "role": "the request must run as the instance's configured user, whose rights were approved",
    "session_authorization": (
        "the request must run as the instance's configured user, whose rights were approved"
    ),
}

_OUTSIDE_TRANSACTION_ONLY: dict[type, str] = {
    ast.CreatedbStmt: "CREATE DATABASE",
    ast.DropdbStmt: "DROP DATABASE",
    ast.CreateTableSpaceStmt: "CREATE TABLESPACE",
    ast.DropTableSpaceStmt: "DROP TABLESPACE",
    ast.AlterSystemStmt: "ALTER SYSTEM",
    ast.CreateSubscriptionStmt: "CREATE SUBSCRIPTION",
    ast.DropSubscriptionStmt: "DROP SUBSCRIPTION",
}


def _refusal(node: ast.Node) -> str | None:
    """Why this statement may not be submitted, or None when it may."""
    if isinstance(node, ast.TransactionStmt):
        return f"{_transaction_command(node)} is not allowed: {_IN_OWN_TRANSACTION}"
    if isinstance(node, ast.CopyStmt):
        return (
            "COPY is not allowed: it reads or writes files on the database server or needs "
            "a client data stream; use SELECT (the result comes back as a CSV file) or INSERT"
        )
    if isinstance(node, ast.VariableSetStmt):
        return _setting_refusal(node)
    outside = _outside_transaction_name(node)
    if outside:
        return f"{outside} cannot run inside a transaction block, and {_IN_OWN_TRANSACTION}"
    for inner in _walk(node):
        if isinstance(inner, ast.FuncCall) and _dotted(inner.funcname) in (
            "set_config",
            "pg_catalog.set_config",
        ):
            reason = _set_config_refusal(inner)
            if reason:
                return reason
    return None


_TRANSACTION_COMMANDS = {
    TransactionStmtKind.TRANS_STMT_START: "START TRANSACTION",
    TransactionStmtKind.TRANS_STMT_ROLLBACK_TO: "ROLLBACK TO SAVEPOINT",
    TransactionStmtKind.TRANS_STMT_PREPARE: "PREPARE TRANSACTION",
}


def _transaction_command(node: ast.TransactionStmt) -> str:
    kind = TransactionStmtKind(node.kind)
    return _TRANSACTION_COMMANDS.get(kind, kind.name.removeprefix("TRANS_STMT_").replace("_", " "))


def _setting_refusal(node: ast.VariableSetStmt) -> str | None:
    if node.kind == VariableSetKind.VAR_RESET_ALL:
        return "RESET ALL is not allowed: it would undo the limits dbquery sets for the request"
    name = (node.name or "").lower()
    why = _PROTECTED_SETTINGS.get(name)
    if why is None:
        return None
    verb = "RESET" if node.kind == VariableSetKind.VAR_RESET else "SET"
    shown = name.replace("_", " ").upper() if name in ("role", "session_authorization") else name
    return f"{verb} {shown} is not allowed: {why}"


def _set_config_refusal(call: ast.FuncCall) -> str | None:
    args = call.args or ()
    first = args[0] if args else None
    if isinstance(first, ast.A_Const) and isinstance(first.val, ast.String):
        name = first.val.sval.lower()
        why = _PROTECTED_SETTINGS.get(name)
        if why:
            return f"set_config('{name}', ...) is not allowed: {why}"
    return None


def _outside_transaction_name(node: ast.Node) -> str | None:
    """The name of a command PostgreSQL refuses inside a transaction block, if this is one."""
    name = _OUTSIDE_TRANSACTION_ONLY.get(type(node))
    if name:
        return name
    if isinstance(node, ast.VacuumStmt) and node.is_vacuumcmd:
        return "VACUUM"
    if isinstance(node, ast.IndexStmt) and node.concurrent:
        return "CREATE INDEX CONCURRENTLY"
    if isinstance(node, ast.DropStmt) and node.concurrent:
        return "DROP INDEX CONCURRENTLY"
    if isinstance(node, ast.ReindexStmt):
        return _reindex_outside_transaction(node)
    if isinstance(node, ast.ClusterStmt) and node.relation is None:
        return "CLUSTER without a table"
    if isinstance(node, ast.DiscardStmt) and node.target == DiscardMode.DISCARD_ALL:
        return "DISCARD ALL"
    if isinstance(node, ast.AlterDatabaseStmt) and any(
        isinstance(o, ast.DefElem) and o.defname == "tablespace" for o in node.options or ()
    ):
        return "ALTER DATABASE ... SET TABLESPACE"
    if isinstance(node, ast.AlterTableStmt):
        for cmd in node.cmds or ():
            if isinstance(cmd.def_, ast.PartitionCmd) and cmd.def_.concurrent:
                return "DETACH PARTITION ... CONCURRENTLY"
    return None


def _reindex_outside_transaction(node: ast.ReindexStmt) -> str | None:
    if any(isinstance(p, ast.DefElem) and p.defname == "concurrently" for p in node.params or ()):
        return "REINDEX ... CONCURRENTLY"
    if node.kind in (
        ReindexObjectType.REINDEX_OBJECT_SCHEMA,
        ReindexObjectType.REINDEX_OBJECT_SYSTEM,
        ReindexObjectType.REINDEX_OBJECT_DATABASE,
    ):
        scope = ReindexObjectType(node.kind).name.removeprefix("REINDEX_OBJECT_")
        return f"REINDEX {scope}"
    return None


# Classification ----------------------------------------------------------------------------

_READ_NODES = (
    ast.VariableShowStmt,
    ast.VariableSetStmt,  # the protected settings are refused; the rest end with the request
    ast.FetchStmt,
    ast.ClosePortalStmt,
    ast.ListenStmt,
    ast.UnlistenStmt,
    ast.DeallocateStmt,
)

_WRITE_NODES = (
    ast.InsertStmt,
    ast.UpdateStmt,
    ast.DeleteStmt,
    ast.MergeStmt,
    ast.CallStmt,
    ast.DoStmt,
    ast.NotifyStmt,
)

# Class-name prefixes of statements that change the schema, privileges or storage.
_DDL_PREFIXES = (
    "Create",
    "Alter",
    "Drop",
    "Define",
    "Grant",
    "Rename",
    "Comment",
    "Truncate",
    "Reindex",
    "Cluster",
    "Refresh",
    "Import",
    "SecLabel",
    "Reassign",
    "Index",
    "View",
    "Rule",
    "CompositeType",
)


def _classify(node: ast.Node) -> str:
    if isinstance(node, ast.SelectStmt):
        return WRITE if _select_writes(node) else READ
    if isinstance(node, ast.ExplainStmt):
        # Only EXPLAIN ANALYZE executes the statement it explains.
        return _classify(node.query) if _explain_analyzes(node) else READ
    if isinstance(node, (ast.DeclareCursorStmt, ast.PrepareStmt)):
        return _classify(node.query)
    if isinstance(node, _READ_NODES):
        return READ
    if isinstance(node, _WRITE_NODES):
        return WRITE
    if type(node).__name__.startswith(_DDL_PREFIXES):
        return DDL
    # Anything else (LOCK, EXECUTE, ANALYZE, CHECKPOINT, ...) is not known to be harmless:
    # calling it a write keeps it out of the read-only path.
    return WRITE


def _select_writes(node: ast.SelectStmt) -> bool:
    """SELECT INTO, row locks (FOR UPDATE/SHARE) and data-modifying WITH queries write."""
    if node.intoClause is not None:
        return True
    for inner in _walk(node):
        if isinstance(inner, ast.SelectStmt) and inner.lockingClause:
            return True
        if isinstance(inner, _WRITE_NODES):
            return True
    return False


def _explain_analyzes(node: ast.ExplainStmt) -> bool:
    for option in node.options or ():
        if isinstance(option, ast.DefElem) and option.defname == "analyze":
            return _option_is_true(option.arg)
    return False


def _option_is_true(arg: Any) -> bool:
    if arg is None:
        return True
    if isinstance(arg, ast.Boolean):
        return bool(arg.boolval)
    if isinstance(arg, ast.Integer):
        return arg.ival != 0
    if isinstance(arg, ast.String):
        return arg.sval.lower() not in ("false", "off", "0", "no")
    return True


def _executed_part(node: ast.Node) -> ast.Node | None:
    """The part of the statement that actually executes (EXPLAIN without ANALYZE runs nothing)."""
    if isinstance(node, ast.ExplainStmt):
        return node.query if _explain_analyzes(node) else None
    return node


# Tables ------------------------------------------------------------------------------------

_DROPPED_RELATIONS = (
    ObjectType.OBJECT_TABLE,
    ObjectType.OBJECT_VIEW,
    ObjectType.OBJECT_MATVIEW,
    ObjectType.OBJECT_FOREIGN_TABLE,
)


def _tables(node: ast.Node) -> tuple[str, ...]:
    found: dict[str, None] = {}
    _collect_tables(node, frozenset(), found)
    return tuple(found)


def _relation_name(node: ast.RangeVar) -> str:
    return ".".join(p for p in (node.catalogname, node.schemaname, node.relname) if p)


def _collect_tables(node: Any, cte_names: frozenset[str], found: dict[str, None]) -> None:
    """Relation names in first-seen order; names of WITH queries in scope are not tables."""
    if isinstance(node, (list, tuple)):
        for item in node:
            _collect_tables(item, cte_names, found)
        return
    if not isinstance(node, ast.Node):
        return
    if isinstance(node, ast.RangeVar):
        if node.schemaname or node.relname not in cte_names:
            found.setdefault(_relation_name(node), None)
        return
    if isinstance(node, ast.DropStmt) and node.removeType in _DROPPED_RELATIONS:
        for names in node.objects or ():
            found.setdefault(_dotted(names), None)
        return
    with_clause = getattr(node, "withClause", None)
    if isinstance(with_clause, ast.WithClause):
        cte_names = _collect_cte_tables(with_clause, cte_names, found)
    for slot in type(node).__slots__:
        if slot != "withClause":
            _collect_tables(getattr(node, slot, None), cte_names, found)


def _collect_cte_tables(
    with_clause: ast.WithClause, cte_names: frozenset[str], found: dict[str, None]
) -> frozenset[str]:
    """Collect the tables of each WITH query; return the CTE names visible to the main query."""
    ctes = [c for c in with_clause.ctes or () if isinstance(c, ast.CommonTableExpr)]
    if with_clause.recursive:
        # In WITH RECURSIVE every CTE name is visible inside every CTE.
        cte_names = cte_names | {c.ctename for c in ctes}
        for cte in ctes:
            _collect_tables(cte.ctequery, cte_names, found)
        return cte_names
    for cte in ctes:
        _collect_tables(cte.ctequery, cte_names, found)
        cte_names = cte_names | {cte.ctename}
    return cte_names


# Warnings ----------------------------------------------------------------------------------


def _warnings(node: ast.Node) -> list[str]:
    executed = _executed_part(node)
    if executed is None:
        return []
    warnings: list[str] = []
    for inner in _walk(executed):
        if isinstance(inner, ast.UpdateStmt) and inner.whereClause is None:
            warnings.append(f"UPDATE without WHERE on {_relation_name(inner.relation)}")
        elif isinstance(inner, ast.DeleteStmt) and inner.whereClause is None:
            warnings.append(f"DELETE without WHERE on {_relation_name(inner.relation)}")
        elif isinstance(inner, ast.DropStmt):
            warnings.append(_drop_warning(inner))
        elif isinstance(inner, ast.TruncateStmt):
            names = ", ".join(_relation_name(r) for r in inner.relations or ())
            warnings.append(f"TRUNCATE {names}")
        elif isinstance(inner, ast.AlterTableStmt):
            warnings.extend(_alter_table_warnings(inner))
    return warnings


def _object_type_name(object_type: Any) -> str:
    special = {ObjectType.OBJECT_MATVIEW: "MATERIALIZED VIEW"}
    kind = ObjectType(object_type)
    return special.get(kind, kind.name.removeprefix("OBJECT_").replace("_", " "))


def _drop_warning(node: ast.DropStmt) -> str:
    what = _object_type_name(node.removeType)
    names = [_dotted(obj) for obj in node.objects or () if isinstance(obj, (list, tuple))]
    names = [n for n in names if n]
    return f"DROP {what} {', '.join(names)}" if names else f"DROP {what}"


def _alter_table_warnings(node: ast.AlterTableStmt) -> list[str]:
    table = _relation_name(node.relation)
    return [
        f"DROP COLUMN {cmd.name} on {table}"
        for cmd in node.cmds or ()
        if isinstance(cmd, ast.AlterTableCmd) and cmd.subtype == AlterTableType.AT_DropColumn
    ]


# --- MongoDB ------------------------------------------------------------------------------


def _analyse_mongo(
    content: str, allow_server_js: bool = False
) -> tuple[list[StatementInfo], list[str]]:
    # Imported here so PostgreSQL-only deployments never load the MongoDB parser.
    from core.mongo_analysis import analyse_mongo

    return analyse_mongo(content, allow_server_js)
