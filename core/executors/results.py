"""One result model for both engines, and the bounded summary kept in the portal row."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The portal row keeps a preview that renders well under Slack's ~3,000-character section
# limit; the whole result travels as a file.
PREVIEW_MAX_ROWS = 20
PREVIEW_MAX_CHARS = 2_000
CELL_MAX_CHARS = 200


class ExecutionError(Exception):
    """Execution failed. `message` is the database's own message (never credentials).

    `partial` carries what ran before the failure (MongoDB scripts have no cross-statement
    rollback, so what already ran is reported).
    """

    def __init__(self, message: str, partial: ExecutionResult | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.partial = partial

    def __str__(self) -> str:
        return self.message


class AuthenticationFailed(ExecutionError):
    """The target refused the credentials: refresh the cached secret and try once more."""


@dataclass
class StatementOutcome:
    index: int  # 1-based position in the query or script
    text: str  # the statement, shortened for display
    kind: str  # read | write | ddl
    status: str = "ok"  # ok | failed | not run | rolled back
    rows: int | None = None  # rows returned (reads)
    affected: int | None = None  # rows inserted/updated/deleted (writes)
    detail: str | None = None  # e.g. "matched 3, modified 2" or the error

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class ExecutionResult:
    columns: list[str] = field(default_factory=list)
    preview_rows: list[list[Any]] = field(default_factory=list)  # first rows, JSON-safe
    row_count: int = 0  # rows written to the file (after the cap)
    truncated: bool = False  # the row cap stopped the stream
    statements: list[StatementOutcome] = field(default_factory=list)
    elapsed_ms: int = 0
    file_path: Path | None = None  # the full result (CSV for PostgreSQL, JSON lines for MongoDB)
    file_format: str | None = None  # csv | jsonl
    notes: list[str] = field(default_factory=list)

    @property
    def affected(self) -> int:
        return sum(s.affected or 0 for s in self.statements)

    def summary(self) -> dict[str, Any]:
        """The bounded JSON kept in query_requests.execution_result."""
        rows: list[list[Any]] = []
        used = len(json.dumps(self.columns))
        for row in self.preview_rows[:PREVIEW_MAX_ROWS]:
            cells = [_short(cell) for cell in row]
            size = len(json.dumps(cells, default=str))
            if used + size > PREVIEW_MAX_CHARS:
                break
            rows.append(cells)
            used += size
        return {
            "columns": self.columns,
            "preview": rows,
            "row_count": self.row_count,
            "truncated": self.truncated,
            "statements": [s.to_json() for s in self.statements][:50],
            "elapsed_ms": self.elapsed_ms,
            "file_format": self.file_format,
            "notes": self.notes,
        }

    def summary_json(self) -> str:
        return json.dumps(self.summary(), default=str, ensure_ascii=False)


def _short(cell: Any) -> Any:
    if isinstance(cell, str) and len(cell) > CELL_MAX_CHARS:
        return cell[: CELL_MAX_CHARS - 1] + "…"
    return cell
