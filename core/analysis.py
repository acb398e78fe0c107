"""Submit-time analysis: parse what a person wants to run, classify it, and refuse what cannot run.

PostgreSQL text is parsed by PostgreSQL's own parser (pglast), so a statement is split,
classified and located exactly as the server would see it. MongoDB text is parsed by the
shell-syntax parser in core.executors.mongo_shell.

Both parsers can crash or exhaust the process on hostile text: untrusted submissions go
through core.analysis_sandbox, which runs `analyse` in a worker process with limits.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from pglast import ast, parser
from pglast.enums import (
    AlterTableType,
    DiscardMode,
    LockClauseStrength,
    ObjectType,
    ReindexObjectType,
    TransactionStmtKind,
    VariableSetKind,
)

from core.errors import DbqueryError
from core.pg_functions import SIDE_EFFECT_FREE

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
    kind: str  # read | write | ddl | admin
    tables: tuple[str, ...]
    line: int  # 1-based line of the statement's first token
    # Why the statement is not a read, each in words the approver sees
    # (e.g. "calls pg_terminate_backend()", "writes to reports.daily through $out").
    reasons: tuple[str, ...] = ()
    # It calls a function outside the side-effect-free list (PostgreSQL): planning it may run
    # that function already (the planner folds IMMUTABLE and STABLE calls), so the submit-time
    # estimate leaves it alone.
    calls_unlisted: bool = False


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

# Deeper parse trees are refused. Real queries stay far below; the bound keeps every recursive
# pass over the tree (here, and when the executor analyses the text again) well inside
# Python's recursion limit.
MAX_SYNTAX_DEPTH = 200


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
        if _depth_exceeds(node, MAX_SYNTAX_DEPTH):
            raise AnalysisError(
                f"too complex to check: expressions nested more than {MAX_SYNTAX_DEPTH} levels"
                " deep",
                line,
                column,
            )
        reason = _refusal(node)
        if reason:
            raise AnalysisError(reason, line, column)
        kind, reasons, calls_unlisted = _classify(node)
        statements.append(
            StatementInfo(
                text=_statement_text(content, raw),
                kind=kind,
                tables=_tables(node),
                line=line,
                reasons=reasons,
                calls_unlisted=calls_unlisted,
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


def _children(node: ast.Node) -> list[ast.Node]:
    """The nodes directly under `node` (lists of lists flattened), in order."""
    found: list[ast.Node] = []
    pending: list[Any] = [getattr(node, slot, None) for slot in reversed(type(node).__slots__)]
    while pending:
        value = pending.pop()
        if isinstance(value, (list, tuple)):
            pending.extend(reversed(value))
        elif isinstance(value, ast.Node):
            found.append(value)
    return found


def _walk(node: Any) -> Iterator[ast.Node]:
    """Every AST node under `node`, itself included, depth first (without recursion)."""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, (list, tuple)):
            stack.extend(reversed(item))
        elif isinstance(item, ast.Node):
            yield item
            stack.extend(reversed(_children(item)))


def _depth_exceeds(node: ast.Node, limit: int) -> bool:
    stack = [(node, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in _children(item))
    return False


def _dotted(names: Any) -> str:
    return ".".join(n.sval for n in names if isinstance(n, ast.String))


# Refusals ----------------------------------------------------------------------------------

_IN_OWN_TRANSACTION = (
    "every request runs in a single transaction that dbquery commits only when all "
    "statements succeed"
)
_SESSION_SETTINGS = "dbquery's executor alone owns session settings"

# Settings whose change would undo a limit dbquery sets, or change who the request runs as.
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
        if isinstance(inner, ast.FuncCall) and _function_name(inner).lower() == "set_config":
            # Whatever its arguments: a setting's name can be computed, cast or concatenated.
            return f"{_shown_name(inner)}() is not allowed: {_SESSION_SETTINGS}"
    return None


_TRANSACTION_COMMANDS = {
    TransactionStmtKind.TRANS_STMT_START: "START TRANSACTION",
    TransactionStmtKind.TRANS_STMT_ROLLBACK_TO: "ROLLBACK TO SAVEPOINT",
    TransactionStmtKind.TRANS_STMT_PREPARE: "PREPARE TRANSACTION",
}


def _transaction_command(node: ast.TransactionStmt) -> str:
    kind = TransactionStmtKind(node.kind)
    return _TRANSACTION_COMMANDS.get(kind, kind.name.removeprefix("TRANS_STMT_").replace("_", " "))


def _setting_refusal(node: ast.VariableSetStmt) -> str:
    """Every SET and RESET is refused: PostgreSQL's SET TRANSACTION READ WRITE, for one, would
    turn a read-only transaction writable again."""
    if node.kind == VariableSetKind.VAR_RESET_ALL:
        return "RESET ALL is not allowed: it would undo the limits dbquery sets for the request"
    name = node.name or ""
    verb = "RESET" if node.kind == VariableSetKind.VAR_RESET else "SET"
    lowered = name.lower()
    if lowered in ("role", "session_authorization"):
        shown = lowered.replace("_", " ").upper()
    elif lowered == "timezone":
        shown = "TIME ZONE"
    else:
        shown = name
    why = _PROTECTED_SETTINGS.get(lowered, _SESSION_SETTINGS)
    return f"{verb} {shown} is not allowed: {why}"


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
#
# An allow-list: a statement is a read only when its kind is known to read (SELECT, VALUES,
# TABLE, SHOW, EXPLAIN without ANALYZE, and the cursor and notification commands that only
# read), nothing in it modifies data or takes row locks, and every function it calls is a
# built-in known to be free of side effects. Everything else is labelled for what it is, with
# the reasons the approver sees.
#
# What stays invisible to a parser: functions run by a view, a trigger, a column default, a
# user-defined operator or cast, or a user function that shadows a built-in's name through
# the search path. Execution does not rely on this label alone (reads run READ ONLY).

# Statements that read and change nothing.
_READ_NODES = (
    ast.VariableShowStmt,
    ast.FetchStmt,  # MOVE too; a cursor can only be declared over a query
    ast.ClosePortalStmt,
    ast.ListenStmt,
    ast.UnlistenStmt,
    ast.DeallocateStmt,
)

# Statements labelled by what they write or lock (a SELECT that does neither is a read).
_DATA_STATEMENTS = (ast.SelectStmt, ast.InsertStmt, ast.UpdateStmt, ast.DeleteStmt, ast.MergeStmt)

# Statements that are not reads whatever they contain, and why.
_FIXED_KINDS: dict[type, tuple[str, str]] = {
    ast.DoStmt: (WRITE, "DO runs procedural code that dbquery cannot inspect"),
    ast.CallStmt: (WRITE, "CALL runs a procedure"),
    ast.NotifyStmt: (WRITE, "NOTIFY sends a notification to other sessions"),
    ast.LockStmt: (WRITE, "LOCK takes table locks"),
    ast.ExecuteStmt: (WRITE, "EXECUTE runs a prepared statement"),
    ast.ConstraintsSetStmt: (WRITE, "SET CONSTRAINTS changes when constraints are checked"),
    ast.DiscardStmt: (WRITE, "DISCARD drops session state"),
    ast.VacuumStmt: (WRITE, "ANALYZE updates the planner's statistics"),  # VACUUM is refused
    ast.LoadStmt: (ADMIN, "LOAD loads a library into the server"),
    ast.CheckPointStmt: (ADMIN, "CHECKPOINT forces a server checkpoint"),
    ast.CreateRoleStmt: (ADMIN, "CREATE ROLE changes who may connect"),
    ast.AlterRoleStmt: (ADMIN, "ALTER ROLE changes a role"),
    ast.AlterRoleSetStmt: (ADMIN, "ALTER ROLE ... SET changes a role's default settings"),
    ast.DropRoleStmt: (ADMIN, "DROP ROLE removes roles"),
    ast.GrantRoleStmt: (ADMIN, "GRANT/REVOKE of a role changes role membership"),
    ast.AlterDatabaseSetStmt: (
        ADMIN,
        "ALTER DATABASE ... SET changes the database's default settings",
    ),
}

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

# What a schema-level statement does, when "changes the schema" would not say it.
_DDL_EFFECTS = {
    "GrantStmt": "changes privileges",
    "TruncateStmt": "empties tables",
    "ClusterStmt": "rewrites a table",
    "ReindexStmt": "rebuilds indexes",
    "RefreshMatViewStmt": "recomputes a materialized view",
    "CommentStmt": "changes a comment",
    "SecLabelStmt": "changes a security label",
    "ReassignOwnedStmt": "changes owners",
}

_COMMAND_NAMES = {
    "CreateStmt": "CREATE TABLE",
    "IndexStmt": "CREATE INDEX",
    "ViewStmt": "CREATE VIEW",
    "RuleStmt": "CREATE RULE",
    "CompositeTypeStmt": "CREATE TYPE",
    "CreateEnumStmt": "CREATE TYPE",
    "CreateRangeStmt": "CREATE TYPE",
    "DefineStmt": "CREATE",
    "RenameStmt": "ALTER ... RENAME",
    "RefreshMatViewStmt": "REFRESH MATERIALIZED VIEW",
    "VacuumStmt": "ANALYZE",
    "ImportForeignSchemaStmt": "IMPORT FOREIGN SCHEMA",
    "SecLabelStmt": "SECURITY LABEL",
    "CreateTableAsStmt": "CREATE TABLE AS",
}

_LOCK_STRENGTHS = {
    LockClauseStrength.LCS_FORKEYSHARE: "FOR KEY SHARE",
    LockClauseStrength.LCS_FORSHARE: "FOR SHARE",
    LockClauseStrength.LCS_FORNOKEYUPDATE: "FOR NO KEY UPDATE",
    LockClauseStrength.LCS_FORUPDATE: "FOR UPDATE",
}


def _command_name(node: ast.Node) -> str:
    """The SQL command a statement node stands for, in words an approver recognises."""
    name = type(node).__name__
    if isinstance(node, ast.DropStmt):
        return f"DROP {_object_type_name(node.removeType)}"
    if isinstance(node, ast.GrantStmt):
        return "GRANT" if node.is_grant else "REVOKE"
    if isinstance(node, ast.CreateTableAsStmt) and node.objtype == ObjectType.OBJECT_MATVIEW:
        return "CREATE MATERIALIZED VIEW"
    if name in _COMMAND_NAMES:
        return _COMMAND_NAMES[name]
    words = re.findall(r"[A-Z][a-z]*", name.removesuffix("Stmt"))
    return " ".join(words).upper()


def _most_serious(kinds: Iterable[str]) -> str:
    return max(kinds, key=KIND_ORDER.index, default=READ)


def _classify(node: ast.Node) -> tuple[str, tuple[str, ...], bool]:
    """The statement's kind, why it is not a read, and whether it calls unlisted functions."""
    kind, reasons = _statement_kind(node)
    found = [(kind, reason) for reason in reasons]
    calls_unlisted = False
    for inner in _walk(node):
        if isinstance(inner, ast.FuncCall):
            effect = _function_effect(inner)
            if effect is not None:
                found.append(effect)
                calls_unlisted = True
    kind = _most_serious([kind, *(k for k, _ in found)])
    return kind, tuple(dict.fromkeys(reason for _, reason in found)), calls_unlisted


def _statement_kind(node: ast.Node) -> tuple[str, list[str]]:
    """The kind of the statement itself, before the functions it calls are considered."""
    if isinstance(node, ast.ExplainStmt):
        # Only EXPLAIN ANALYZE executes the statement it explains.
        if not _explain_analyzes(node):
            return READ, []
        kind, reasons = _statement_kind(node.query)
        if kind == READ:
            return READ, []
        return kind, ["EXPLAIN ANALYZE runs the statement", *reasons]
    if isinstance(node, (ast.DeclareCursorStmt, ast.PrepareStmt)):
        return _statement_kind(node.query)
    if isinstance(node, _READ_NODES):
        return READ, []
    fixed = _FIXED_KINDS.get(type(node))
    if fixed is not None:
        return fixed[0], [fixed[1]]
    effects = _data_effects(node)
    if isinstance(node, _DATA_STATEMENTS):
        return (WRITE if effects else READ), effects
    command = _command_name(node)
    if type(node).__name__.startswith(_DDL_PREFIXES):
        what = _DDL_EFFECTS.get(type(node).__name__, "changes the schema")
        return DDL, [f"{command} {what}", *effects]
    return WRITE, [f"{command} is not known to be read-only", *effects]


def _data_effects(node: ast.Node) -> list[str]:
    """What the statement and its sub-statements write or lock, in words."""
    effects: list[str] = []
    if isinstance(node, ast.SelectStmt) and node.intoClause is not None:
        target = _relation_name(node.intoClause.rel)
        effects.append(f"SELECT INTO creates table {target}")
    for inner in _walk(node):
        if isinstance(inner, ast.InsertStmt):
            effects.append(f"inserts into {_relation_name(inner.relation)}")
        elif isinstance(inner, ast.UpdateStmt):
            effects.append(f"updates {_relation_name(inner.relation)}")
        elif isinstance(inner, ast.DeleteStmt):
            effects.append(f"deletes from {_relation_name(inner.relation)}")
        elif isinstance(inner, ast.MergeStmt):
            effects.append(f"merges into {_relation_name(inner.relation)}")
        elif isinstance(inner, ast.SelectStmt):
            for clause in inner.lockingClause or ():
                strength = _LOCK_STRENGTHS.get(clause.strength, "FOR UPDATE")
                effects.append(f"SELECT ... {strength} takes row locks")
    return list(dict.fromkeys(effects))


def _explain_analyzes(node: ast.ExplainStmt) -> bool:
    """PostgreSQL's own reading: the last ANALYZE option wins."""
    analyzes = False
    for option in node.options or ():
        if isinstance(option, ast.DefElem) and option.defname == "analyze":
            analyzes = _option_is_true(option.arg)
    return analyzes


def _option_is_true(arg: Any) -> bool:
    """False only for the spellings PostgreSQL reads as false; anything else it either reads
    as true or refuses, so counting it as true is safe."""
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


# Functions ---------------------------------------------------------------------------------

_FILES = "reads files on the database server"
_LARGE_OBJECTS = "creates, changes or deletes large objects"
_REPLICATION = "acts on replication"

# Functions with known effects, by lower-case name: (kind, what it does).
_KNOWN_FUNCTIONS: dict[str, tuple[str, str]] = {
    "pg_terminate_backend": (ADMIN, "ends another session"),
    "pg_cancel_backend": (ADMIN, "cancels another session's query"),
    "pg_reload_conf": (ADMIN, "reloads the server's configuration"),
    "pg_rotate_logfile": (ADMIN, "rotates the server's log file"),
    "pg_rotate_logfile_old": (ADMIN, "rotates the server's log file"),
    "pg_read_file": (ADMIN, _FILES),
    "pg_read_file_old": (ADMIN, _FILES),
    "pg_read_binary_file": (ADMIN, _FILES),
    "pg_stat_file": (ADMIN, _FILES),
    "pg_current_logfile": (ADMIN, _FILES),
    "pg_hba_file_rules": (ADMIN, _FILES),
    "pg_ident_file_mappings": (ADMIN, _FILES),
    "pg_show_all_file_settings": (ADMIN, _FILES),
    "pg_notify": (WRITE, "sends a notification to other sessions"),
    "lo_import": (ADMIN, "reads a file on the database server into a large object"),
    "lo_export": (ADMIN, "writes a large object to a file on the database server"),
    "loread": (ADMIN, "reads an open large object"),
    "lowrite": (ADMIN, _LARGE_OBJECTS),
    "pg_switch_wal": (ADMIN, "forces a switch to a new WAL file"),
    "pg_create_restore_point": (ADMIN, "writes a restore point to the WAL"),
    "pg_backup_start": (ADMIN, "starts a server backup"),
    "pg_backup_stop": (ADMIN, "stops a server backup"),
    "pg_start_backup": (ADMIN, "starts a server backup"),
    "pg_stop_backup": (ADMIN, "stops a server backup"),
    "pg_promote": (ADMIN, "promotes a standby server"),
    "pg_wal_replay_pause": (ADMIN, _REPLICATION),
    "pg_wal_replay_resume": (ADMIN, _REPLICATION),
    "pg_drop_replication_slot": (ADMIN, _REPLICATION),
    "pg_replication_slot_advance": (ADMIN, _REPLICATION),
    "pg_log_backend_memory_contexts": (ADMIN, "writes to the server log"),
    "pg_import_system_collations": (ADMIN, "creates collations"),
    "pg_nextoid": (ADMIN, "advances the server's OID counter"),
    "pg_stop_making_pinned_objects": (ADMIN, "changes the server's catalogue"),
    "pg_extension_config_dump": (ADMIN, "changes an extension's configuration"),
    "pg_stat_force_next_flush": (ADMIN, "flushes statistics"),
    "query_to_xml": (ADMIN, "runs SQL text that dbquery cannot check"),
    "query_to_xml_and_xmlschema": (ADMIN, "runs SQL text that dbquery cannot check"),
    "query_to_xmlschema": (ADMIN, "runs SQL text that dbquery cannot check"),
    "ts_stat": (ADMIN, "runs SQL text that dbquery cannot check"),
    "ts_rewrite": (ADMIN, "may run SQL text that dbquery cannot check"),
    "nextval": (WRITE, "advances a sequence"),
    "setval": (WRITE, "sets a sequence"),
    "setseed": (WRITE, "changes the session's random seed"),
    "txid_current": (WRITE, "assigns a transaction id"),
    "pg_current_xact_id": (WRITE, "assigns a transaction id"),
    "brin_summarize_range": (WRITE, "changes an index"),
    "brin_summarize_new_values": (WRITE, "changes an index"),
    "brin_desummarize_range": (WRITE, "changes an index"),
    "gin_clean_pending_list": (WRITE, "changes an index"),
}

_KNOWN_PREFIXES: tuple[tuple[str, tuple[str, str]], ...] = (
    ("pg_ls_", (ADMIN, "lists files on the database server")),
    ("pg_stat_reset", (ADMIN, "resets server statistics")),
    ("pg_advisory", (ADMIN, "takes or releases advisory locks shared with other sessions")),
    ("pg_try_advisory", (ADMIN, "takes advisory locks shared with other sessions")),
    ("lo_", (ADMIN, _LARGE_OBJECTS)),
    ("dblink", (ADMIN, "connects to another database")),
    ("pg_file_", (ADMIN, "writes files on the database server")),
    ("pg_logdir_ls", (ADMIN, "lists files on the database server")),
    ("pg_create_", (ADMIN, _REPLICATION)),
    ("pg_copy_", (ADMIN, _REPLICATION)),
    ("pg_logical_", (ADMIN, _REPLICATION)),
    ("pg_replication_origin_", (ADMIN, _REPLICATION)),
    ("binary_upgrade_", (ADMIN, "changes the server's catalogue")),
)


def _function_name(call: ast.FuncCall) -> str:
    names = [n.sval for n in call.funcname or () if isinstance(n, ast.String)]
    return names[-1] if names else ""


def _shown_name(call: ast.FuncCall) -> str:
    return _dotted(call.funcname or ())


def _function_effect(call: ast.FuncCall) -> tuple[str, str] | None:
    """None for a built-in known to be free of side effects, else (kind, reason)."""
    names = [n.sval for n in call.funcname or () if isinstance(n, ast.String)]
    name = names[-1] if names else ""
    # A qualified name elsewhere than pg_catalog is someone's own function, whatever its name.
    built_in_path = len(names) == 1 or (len(names) == 2 and names[0] == "pg_catalog")
    if built_in_path and name in SIDE_EFFECT_FREE:
        return None
    shown = _shown_name(call)
    lowered = name.lower()
    known = _KNOWN_FUNCTIONS.get(lowered)
    if known is None:
        known = next((k for prefix, k in _KNOWN_PREFIXES if lowered.startswith(prefix)), None)
    if known is None:
        return WRITE, f"calls {shown}(), which is not known to be free of side effects"
    kind, what = known
    return kind, f"calls {shown}(), which {what}"


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
