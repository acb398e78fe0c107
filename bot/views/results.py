"""The threaded reply under the requester's card: the result, the error or the rejection."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Sequence
from typing import Any

from bot.views.limits import (
    ELLIPSIS,
    SECTION_TEXT,
    break_fences,
    code_block,
    context,
    count_note,
    escape_mrkdwn,
    fit_escaped,
    message,
    section,
    slack_len,
    truncate,
)
from bot.views.request_card import decision_block, decision_line, target_text
from core.executors.results import size_text
from core.lifecycle import Status
from core.records import RequestRecord

INLINE_MAX_ROWS = 20
INLINE_TABLE_CHARS = 2_500
CELL_WIDTH = 40  # wider cells are cut so one long value does not push every column off-screen
STATEMENT_TEXT = 80
STATEMENTS_LIMIT = 2_800
NOTE_LIMIT = 300
FILE_FORMAT_LABEL = {"csv": "CSV", "jsonl": "JSON lines"}
STATEMENT_ICON = {
    "ok": ":white_check_mark:",
    "failed": ":x:",
    "not run": ":white_circle:",
    "rolled back": ":leftwards_arrow_with_hook:",
}
_FENCE_OVERHEAD = len("```\n\n```")


# --- tables ---------------------------------------------------------------------------------


def cell_text(value: Any) -> str:
    """One cell on one line: NULL for None, JSON for documents, newlines shown as ↵."""
    if value is None:
        text = "NULL"
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, dict | list):
        text = json.dumps(value, ensure_ascii=False, default=str)
    else:
        text = str(value)
    return text.replace("\r\n", "↵").replace("\n", "↵").replace("\r", "↵").replace("\t", " ")


def display_width(text: str) -> int:
    """Columns a monospace font gives `text`: wide (CJK, emoji) count two, combining marks none."""
    width = 0
    for ch in text:
        if unicodedata.combining(ch):
            continue
        width += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return width


def _clip(text: str, width: int) -> str:
    if display_width(text) <= width:
        return text
    out, used = [], 0
    for ch in text:
        step = display_width(ch)
        if used + step > width - 1:
            break
        out.append(ch)
        used += step
    return "".join(out) + ELLIPSIS


def _pad(text: str, width: int) -> str:
    return text + " " * (width - display_width(text))


def _inline_size(text: str) -> int:
    """Size of `text` once escaped and fenced as a code block."""
    return slack_len(escape_mrkdwn(break_fences(text))) + _FENCE_OVERHEAD


def render_table(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], max_chars: int
) -> str | None:
    """A monospace table, or None when it does not fit `max_chars` as a code block."""
    if not columns:
        return None
    heads = [_clip(cell_text(c), CELL_WIDTH) for c in columns]
    # A thousand columns cannot fit; give up before formatting any row.
    if sum(display_width(h) for h in heads) + 3 * (len(heads) - 1) > max_chars:
        return None
    body = [[_clip(cell_text(v), CELL_WIDTH) for v in row] for row in rows]
    widths = [display_width(h) for h in heads]
    for row in body:
        for i, cell in enumerate(row[: len(widths)]):
            widths[i] = max(widths[i], display_width(cell))

    def line(cells: Sequence[str]) -> str:
        padded = [_pad(cells[i] if i < len(cells) else "", w) for i, w in enumerate(widths)]
        return " | ".join(padded).rstrip()

    lines = [line(heads), "-+-".join("-" * w for w in widths)]
    lines.extend(line(row) for row in body)
    table = "\n".join(lines)
    return table if _inline_size(table) <= max_chars else None


def _record_view(columns: Sequence[str], row: Sequence[Any]) -> str:
    """A wide first row shown as 'column: value' lines (cut later by code_block)."""
    return "\n".join(
        f"{_clip(cell_text(c), CELL_WIDTH)}: {_clip(cell_text(v), CELL_WIDTH * 2)}"
        for c, v in zip(columns, row, strict=False)
    )


# --- what the summary says ------------------------------------------------------------------


def _summary(request: RequestRecord) -> dict[str, Any]:
    return request.result_summary() or {}


def _inline_table(summary: dict[str, Any]) -> str | None:
    """The whole result as a table when every row is in the preview and it fits inline."""
    columns, preview = summary.get("columns") or [], summary.get("preview") or []
    row_count = int(summary.get("row_count") or 0)
    if not columns or row_count > INLINE_MAX_ROWS or row_count > len(preview):
        return None
    if summary.get("preview_cut"):
        return None
    return render_table(columns, preview, INLINE_TABLE_CHARS)


def needs_file(request: RequestRecord) -> bool:
    """True when the result has more rows than fit inline, so the whole result goes as a file."""
    summary = _summary(request)
    if not summary.get("columns") or not int(summary.get("row_count") or 0):
        return False
    return _inline_table(summary) is None


def _elapsed(summary: dict[str, Any]) -> str:
    ms = int(summary.get("elapsed_ms") or 0)
    return f"{ms:,} ms" if ms < 1_000 else f"{ms / 1000:,.1f} s"


def _rows(n: int) -> str:
    return f"{n:,} row{'' if n == 1 else 's'}"


def _statement_line(statement: dict[str, Any]) -> str:
    status = str(statement.get("status") or "ok")
    icon = STATEMENT_ICON.get(status, ":grey_question:")
    text = " ".join(str(statement.get("text") or "").split())
    shown = fit_escaped(text, STATEMENT_TEXT).replace("`", "'") or "(empty)"
    parts = []
    if statement.get("affected") is not None:
        parts.append(f"{_rows(int(statement['affected']))} affected")
    if statement.get("rows") is not None:
        parts.append(f"{_rows(int(statement['rows']))} returned")
    if status != "ok":
        parts.append(status)
    if statement.get("detail"):
        parts.append(fit_escaped(" ".join(str(statement["detail"]).split()), 200))
    tail = f" — {'; '.join(parts)}" if parts else ""
    return f"{icon} {statement.get('index', '?')}. `{shown}`{tail}"


def statements_text(statements: Sequence[dict[str, Any]], limit: int = STATEMENTS_LIMIT) -> str:
    """One line per statement with its counts, cut with '… and N more statements'."""
    lines = ["*Statements*"]
    for count, statement in enumerate(statements):
        candidate = [*lines, _statement_line(statement)]
        if (
            slack_len("\n".join([*candidate, count_note(count, len(statements), "statements")]))
            > limit
        ):
            return "\n".join([*lines, count_note(count, len(statements), "statements")])
        lines = candidate
    return "\n".join(lines)


def _shows_statements(summary: dict[str, Any]) -> bool:
    statements = summary.get("statements") or []
    if not statements:
        return False
    return (
        len(statements) > 1
        or not summary.get("columns")
        or any(s.get("kind") != "read" for s in statements)
    )


def _preview_blocks(summary: dict[str, Any], file_attached: bool) -> list[dict[str, Any]]:
    columns, preview = summary.get("columns") or [], summary.get("preview") or []
    row_count = int(summary.get("row_count") or 0)
    budget = INLINE_TABLE_CHARS
    shown, table = 0, None
    for shown in range(min(len(preview), INLINE_MAX_ROWS), 0, -1):
        table = render_table(columns, preview[:shown], budget)
        if table is not None:
            break
    if table is not None:
        body = f"*First {_rows(shown)} of {row_count:,}*\n" + code_block(table, budget)
    elif preview:
        body = (
            f"*First row of {row_count:,}* ({len(columns):,} columns, too wide for a table)\n"
            + code_block(_record_view(columns, preview[0]), budget, what="the first row")
        )
    else:
        body = f"*{len(columns):,} columns*: " + fit_escaped(", ".join(map(str, columns)), 1_500)
    fmt = FILE_FORMAT_LABEL.get(str(summary.get("file_format")), "a file")
    if file_attached and summary.get("compressed"):
        file_line = (
            f":paperclip: Full result ({_rows(row_count)},"
            f" {size_text(int(summary.get('content_bytes') or 0))} uncompressed)"
            f" attached as gzip-compressed {fmt}"
            f" ({size_text(int(summary.get('file_bytes') or 0))})."
        )
    elif file_attached:
        file_line = f":paperclip: Full result ({_rows(row_count)}) attached as {fmt}."
    else:
        file_line = f":information_source: Only the preview is shown; {_rows(row_count)} in all."
    return [section(body), section(file_line)]


def _result_blocks(summary: dict[str, Any], file_attached: bool) -> list[dict[str, Any]]:
    row_count = int(summary.get("row_count") or 0)
    blocks: list[dict[str, Any]] = []
    columns = summary.get("columns") or []
    if columns and not row_count:
        names = fit_escaped(", ".join(map(str, columns)), 1_500)
        blocks.append(section(f"*No rows.* Columns: {names}"))
    elif columns:
        table = _inline_table(summary)
        if table is not None:
            blocks.append(section(f"*{_rows(row_count)}*\n" + code_block(table, SECTION_TEXT - 40)))
        else:
            blocks.extend(_preview_blocks(summary, file_attached))
    if _shows_statements(summary):
        blocks.append(section(statements_text(summary.get("statements") or [])))
    if summary.get("truncated"):
        blocks.append(
            context(
                f":warning: {_sentence(_truncation(summary))}; the result holds the first"
                f" {_rows(row_count)}. Narrow the query to see the rest."
            )
        )
    notes = [
        f":information_source: {fit_escaped(str(n), NOTE_LIMIT)}"
        for n in summary.get("notes") or []
    ]
    if notes:
        blocks.append(context(*notes[:10]))
    return blocks


def _truncation(summary: dict[str, Any]) -> str:
    """Why the result stops early, as the executor said it (older summaries: the row cap)."""
    reason = summary.get("truncation")
    if reason:
        return fit_escaped(str(reason), NOTE_LIMIT)
    return f"stopped at the row cap of {int(summary.get('row_count') or 0):,} rows"


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def result_file_name(request: RequestRecord, result_file_suffixes: Sequence[str]) -> str:
    """The uploaded file's name: dbquery-<id>.csv, or .csv.gz when it was compressed."""
    summary = _summary(request)
    extension = {"csv": "csv", "jsonl": "jsonl"}.get(str(summary.get("file_format")), "txt")
    compressed = summary.get("compressed") or ".gz" in result_file_suffixes
    return f"dbquery-{request.short_id}.{extension}{'.gz' if compressed else ''}"


def outcome_summary(request: RequestRecord) -> str:
    """One line about a completed request's result, for /dbquery status."""
    summary = _summary(request)
    if not summary:
        return ":heavy_check_mark: Completed; no result summary was recorded."
    parts = []
    if summary.get("columns"):
        parts.append(f"{_rows(int(summary.get('row_count') or 0))} returned")
    counted = [
        s["affected"] for s in summary.get("statements") or [] if s.get("affected") is not None
    ]
    if counted:
        parts.append(f"{_rows(sum(int(n) for n in counted))} affected")
    parts.append(f"in {_elapsed(summary)}")
    if summary.get("truncated"):
        parts.append(_truncation(summary))
    return (
        f":heavy_check_mark: Completed: {', '.join(parts)}."
        " The result is in the thread under the request card."
    )


# --- the reply ------------------------------------------------------------------------------


def _completed(request: RequestRecord, file_attached: bool) -> tuple[str, list[dict[str, Any]]]:
    summary = _summary(request)
    head = (
        f":heavy_check_mark: Request `{request.short_id}` on *{target_text(request)}* completed"
        f" in {_elapsed(summary)}."
    )
    text = f"Request {request.short_id} completed"
    if not summary:
        return text, [section(head + "\nNo result summary was recorded.")]
    if summary.get("columns"):
        text += f": {_rows(int(summary.get('row_count') or 0))}"
    return text, [section(head), *_result_blocks(summary, file_attached)]


def _failed(request: RequestRecord) -> tuple[str, list[dict[str, Any]]]:
    error = request.execution_error or "(no error message was recorded)"
    head = f":x: Request `{request.short_id}` on *{target_text(request)}* failed."
    label = "*The database said*\n"
    blocks = [
        section(head),
        section(label + code_block(error, SECTION_TEXT - len(label), what="the error")),
    ]
    summary = _summary(request)
    if summary.get("statements"):
        blocks.append(section(statements_text(summary["statements"])))
    first_line = error.strip().splitlines()[0] if error.strip() else error
    return f"Request {request.short_id} failed: {truncate(first_line, 300)}", blocks


def _rejected(request: RequestRecord) -> tuple[str, list[dict[str, Any]]]:
    reason = truncate(request.rejection_reason or "no reason given", 500)
    head = f":no_entry_sign: Request `{request.short_id}` on *{target_text(request)}* was rejected."
    return f"Request {request.short_id} was rejected: {reason}", [
        section(head),
        decision_block(request),
    ]


def outcome_message(request: RequestRecord, *, file_attached: bool) -> dict[str, Any]:
    """The reply under the requester's card once the request has an outcome."""
    if request.status == Status.COMPLETED:
        text, blocks = _completed(request, file_attached)
    elif request.status == Status.FAILED:
        text, blocks = _failed(request)
    elif request.status == Status.REJECTED:
        text, blocks = _rejected(request)
    else:
        line = decision_line(request) or f"Request `{request.short_id}` is {request.status}."
        text, blocks = f"Request {request.short_id} is {request.status}", [section(line)]
    return message(text, blocks)


__all__ = [
    "cell_text",
    "needs_file",
    "outcome_message",
    "outcome_summary",
    "render_table",
    "result_file_name",
    "statements_text",
]
