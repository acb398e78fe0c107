"""Submit-time analysis of MongoDB shell text: parse it, classify each statement, warn.

Server-side JavaScript (`$where`, `$function`, `$accumulator`, `mapReduce`) is refused unless
the instance opts in with `allow_server_js`; even then the statement is never labelled a read,
because what the JavaScript does cannot be checked.
"""

from __future__ import annotations

from typing import Any

from core.analysis import ADMIN, READ, AnalysisError, StatementInfo, nothing_to_run
from core.executors.mongo_shell import MongoParseError, MongoStatement, parse

_UNFILTERED_WARNED = {
    "update_many": "updateMany",
    "delete_many": "deleteMany",
}


def analyse_mongo(
    content: str, allow_server_js: bool = False
) -> tuple[list[StatementInfo], list[str]]:
    if not content.strip():
        raise nothing_to_run()
    try:
        parsed = parse(content)
    except MongoParseError as exc:
        raise AnalysisError(exc.message, exc.line, exc.column) from None
    if not parsed:
        raise nothing_to_run()
    statements: list[StatementInfo] = []
    warnings: list[str] = []
    for statement in parsed:
        reasons = list(statement.effects)
        kind = statement.kind
        if kind != READ and any(name.startswith("system.") for name in _tables(statement)):
            # system.js holds functions $where can call; other system collections are the
            # server's own bookkeeping.
            kind = ADMIN
            reasons.append(f"changes {_tables(statement)[0]}, a system collection")
        javascript = statement.server_js
        if javascript:
            described = ", ".join(javascript)
            if not allow_server_js:
                raise AnalysisError(
                    f"{described} runs JavaScript on the server, which this instance does not "
                    "allow (allow_server_js in the catalogue): rewrite it with query operators "
                    "such as $expr",
                    statement.line,
                    statement.column,
                )
            kind = ADMIN
            reasons.append(f"runs server-side JavaScript ({described})")
            warnings.append(
                f"server-side JavaScript ({described}) on {_where(statement)}: allowed on this "
                "instance, but what it does cannot be checked"
            )
        statements.append(
            StatementInfo(
                text=statement.text,
                kind=kind,
                tables=_tables(statement),
                line=statement.line,
                reasons=tuple(reasons),
            )
        )
        warnings.extend(_warnings(statement))
    return statements, warnings


def _where(statement: MongoStatement) -> str:
    return statement.collection or "the database"


def _tables(statement: MongoStatement) -> tuple[str, ...]:
    if statement.collection is not None:
        return (statement.collection,)
    if statement.args and isinstance(statement.args[0], str):
        return (statement.args[0],)  # createCollection, createView
    return ()


def _warnings(statement: MongoStatement) -> list[str]:
    out: list[str] = []
    name = _UNFILTERED_WARNED.get(statement.operation)
    if name and _filter_is_empty(statement.call_args):
        out.append(f"{name} without a filter on {statement.collection}")
    if statement.operation == "bulk_write":
        for request in statement.call_args[0]:
            kind = type(request).__name__
            if kind in ("UpdateMany", "DeleteMany") and not request._filter:
                out.append(
                    f"bulkWrite {kind[0].lower()}{kind[1:]} without a filter on "
                    f"{statement.collection}"
                )
    if statement.operation == "drop":
        out.append(f"drop() removes collection {statement.collection} and every document in it")
    if statement.operation in ("drop_index", "drop_indexes"):
        out.append(f"dropping indexes on {statement.collection} can slow its queries")
    if statement.operation == "rename" and statement.call_kwargs.get("dropTarget"):
        out.append(f"renameCollection with dropTarget drops {statement.call_args[0]} if it exists")
    return out


def _filter_is_empty(args: Any) -> bool:
    if not args:
        return True
    first = args[0]
    return isinstance(first, dict) and not first
