"""The App Home tab: my recent requests, and for deciders the requests waiting for them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.views.approval import analysis_for, decision_buttons, decision_summary
from bot.views.limits import (
    MAX_BLOCKS_HOME,
    context,
    count_note,
    divider,
    fit_escaped,
    header,
    section,
    take_items,
)
from bot.views.request_card import request_line
from core.approvals import PolicyState
from core.lifecycle import Role
from core.records import RequestRecord, UserRecord

HOME_CONTENT_LIMIT = 600
MINE_KEPT = 10  # recent requests always kept visible however many wait for a decision


def is_decider(user: UserRecord) -> bool:
    return user.is_active and user.role in (Role.MANAGER, Role.ADMIN)


def unique_requests(requests: list[RequestRecord]) -> list[RequestRecord]:
    """Each request once: block ids carry the uuid and must be unique in a view."""
    by_uuid: dict[Any, RequestRecord] = {}
    for request in requests:
        by_uuid.setdefault(request.uuid, request)
    return list(by_uuid.values())


def waiting_items(
    waiting: list[RequestRecord],
    analyses: Mapping[Any, Any] | None,
    content_limit: int,
    policies: Mapping[int, PolicyState | None] | None = None,
) -> list[list[dict[str, Any]]]:
    """Per waiting request: its summary (risk first), the decision buttons, a divider."""
    items = []
    for request in unique_requests(waiting):
        analysis = analysis_for(analyses, request)
        policy = (policies or {}).get(request.id)
        items.append(
            [
                decision_summary(request, analysis, content_limit=content_limit, policy=policy),
                decision_buttons(request, analysis),
                divider(),
            ]
        )
    return items


def _intro(user: UserRecord) -> dict[str, Any]:
    text = (
        f"Hi {fit_escaped(user.name, 120)}. Type `/dbquery` to ask for a query to be run;"
        " `/dbquery help` lists the other commands."
    )
    if is_decider(user):
        text += "\nRequests waiting for your decision are listed first."
    return section(text)


def home_view(
    user: UserRecord,
    mine: list[RequestRecord],
    waiting: list[RequestRecord],
    analyses: Mapping[Any, Any] | None,
    policies: Mapping[int, PolicyState | None] | None = None,
) -> dict[str, Any]:
    blocks: list[dict[str, Any]] = [header("dbquery"), _intro(user)]
    # header, at least MINE_KEPT lines (or the "none yet" line), a possible overflow note
    mine_reserve = 1 + max(min(len(mine), MINE_KEPT), 1) + 1
    if is_decider(user):
        items = waiting_items(waiting, analyses, HOME_CONTENT_LIMIT, policies)
        blocks.append(header(f"Waiting for your decision ({len(items):,})"))
        budget = MAX_BLOCKS_HOME - len(blocks) - 1 - mine_reserve
        taken, shown = take_items(items, max_blocks=budget)
        blocks.extend(taken or [section("Nothing is waiting for your decision."), divider()])
        if shown < len(items):
            blocks.append(
                context(count_note(shown, len(items), "waiting", "decide these to see the rest"))
            )
    blocks.append(header("Your recent requests"))
    budget = MAX_BLOCKS_HOME - len(blocks) - 1
    taken, shown = take_items([[section(request_line(r))] for r in mine], max_blocks=budget)
    blocks.extend(taken or [section("You have no requests yet.")])
    if shown < len(mine):
        blocks.append(context(count_note(shown, len(mine), "requests", "`/dbquery list`")))
    return {"type": "home", "blocks": blocks}


__all__ = ["home_view", "is_decider", "waiting_items"]
