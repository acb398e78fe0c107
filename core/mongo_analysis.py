"""Submit-time analysis of MongoDB shell text: parse it, classify each statement, warn."""

from __future__ import annotations

from typing import Any

from core.analysis import AnalysisError, StatementInfo, nothing_to_run
from core.executors.mongo_shell import MongoParseError, parse

_UNFILTERED_WARNED = ("updateMany", "deleteMany")


def analyse_mongo(content: str) -> tuple[list[StatementInfo], list[str]]:
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
        statements.append(
            StatementInfo(
                text=statement.text,
                kind=statement.kind,
                tables=(statement.collection,),
                line=statement.line,
            )
        )
        if statement.method in _UNFILTERED_WARNED and _filter_is_empty(statement.args):
            warnings.append(f"{statement.method} without a filter on {statement.collection}")
    return statements, warnings


def _filter_is_empty(args: Any) -> bool:
    if not args:
        return True
    first = args[0]
    return isinstance(first, dict) and not first
