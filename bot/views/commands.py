"""Answers to /dbquery sub-commands: help, list, status, pending, and 'not registered'."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.views.home import waiting_items
from bot.views.limits import (
    MAX_BLOCKS_MESSAGE,
    MESSAGE_BLOCKS_BUDGET,
    SECTION_TEXT,
    blocks_chars,
    code_block,
    context,
    count_note,
    fit_escaped,
    header,
    message,
    section,
    take_items,
)
from bot.views.request_card import request_card, request_line, status_label
from bot.views.results import outcome_summary
from core.approvals import PolicyState
from core.lifecycle import Status
from core.records import RequestRecord

PENDING_CONTENT_LIMIT = 400
ERROR_EXCERPT = 1_000


def help_text() -> str:
    return "\n".join(
        [
            "*dbquery* runs queries against production databases after a manager approves them.",
            "`/dbquery` — open the form to submit a query or a script",
            "`/dbquery list [status]` — your recent requests"
            " (status: pending, approved, rejected, executing, completed, failed)",
            "`/dbquery status &lt;id&gt;` — one request, by its id or first 8 characters"
            " (yours, or one you may decide)",
            "`/dbquery pending` — requests waiting for your decision (managers and admins)",
            "`/dbquery rerun &lt;id&gt;` — the form filled from that request, to submit it again"
            " as a new request",
            "`/dbquery help` — this help",
            "Results arrive as a reply under your request card in your DM with dbquery.",
        ]
    )


def _note_block(shown: int, total: int, noun: str, where: str) -> list[dict[str, Any]]:
    return [context(count_note(shown, total, noun, where))] if shown < total else []


def request_list_message(requests: list[RequestRecord]) -> dict[str, Any]:
    if not requests:
        return message("No requests found.", [section("No requests found.")])
    head = [header(f"Requests ({len(requests):,})")]
    items = [[section(request_line(r))] for r in requests]
    taken, shown = take_items(
        items,
        max_blocks=MAX_BLOCKS_MESSAGE - len(head) - 1,
        max_chars=MESSAGE_BLOCKS_BUDGET - blocks_chars(head) - 200,
    )
    blocks = [*head, *taken, *_note_block(shown, len(requests), "requests", "narrow by status")]
    lines = [f"{r.short_id} {r.status} {r.target_label}" for r in requests[:shown]]
    return message("Requests:\n" + "\n".join(lines), blocks)


def status_message(request: RequestRecord) -> dict[str, Any]:
    """The request card, plus a short account of the outcome when there is one."""
    card = request_card(request)
    blocks = [
        header(f"Request {request.short_id} · {status_label(request.status)}"),
        *card["blocks"][1:],
    ]
    if request.status == Status.COMPLETED:
        blocks.insert(-1, section(outcome_summary(request)))
    elif request.status == Status.FAILED:
        label = "*The database said*\n"
        error = request.execution_error or "(no error message was recorded)"
        limit = min(ERROR_EXCERPT, SECTION_TEXT - len(label))
        blocks.insert(-1, section(label + code_block(error, limit, what="the error")))
    return {"text": card["text"], "blocks": blocks}


def pending_message(
    requests: list[RequestRecord],
    analyses: Mapping[Any, Any] | None,
    policies: Mapping[int, PolicyState | None] | None = None,
) -> dict[str, Any]:
    """Requests waiting for the caller, each with the same Approve / Reject buttons as the DM."""
    items = waiting_items(requests, analyses, PENDING_CONTENT_LIMIT, policies)
    if not items:
        text = "Nothing is waiting for your decision."
        return message(text, [section(text)])
    head = [header(f"Waiting for your decision ({len(items):,})")]
    taken, shown = take_items(
        items,
        max_blocks=MAX_BLOCKS_MESSAGE - len(head) - 1,
        max_chars=MESSAGE_BLOCKS_BUDGET - blocks_chars(head) - 200,
    )
    blocks = [*head, *taken, *_note_block(shown, len(items), "waiting", "see the Home tab")]
    waiting = f"{len(items):,} request{'s' if len(items) != 1 else ''} waiting for your decision"
    return message(waiting, blocks)


def not_registered_message(text: str) -> dict[str, Any]:
    shown = fit_escaped(text, SECTION_TEXT - 20)
    return message(text, [section(f":warning: {shown}")])


__all__ = [
    "help_text",
    "not_registered_message",
    "pending_message",
    "request_list_message",
    "status_message",
]
