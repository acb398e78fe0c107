"""What went wrong, and how to say it on Slack: one mapping from an error to a reply.

Core's errors carry the sentence a person should see (core/errors.py); an unreachable portal
database has a sentence of its own. Every listener hands what it caught to one of these,
depending on where the person is looking:

* `as_message`: an ephemeral text (a slash command's answer, a button's follow-up);
* `field_errors`: the error under the field at fault in a modal (`response_action: errors`);
* `tell_privately`: an ephemeral message or DM when there is nothing left to answer in.

Anything else is a bug: it is not caught here, so Bolt logs it with its traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Any

from slack_bolt.context.respond import Respond
from slack_sdk import WebClient

from bot.replies import reply_privately
from bot.views.limits import truncate
from core.errors import DbqueryError, InvalidSubmission
from core.jobs import PORTAL_UNAVAILABLE
from core.records import UserRecord

PORTAL_DOWN = (
    "dbquery can't reach its database just now, so nothing was stored. "
    "Try again in a minute or two."
)
# What a listener catches and answers; anything else propagates as a bug.
ANSWERABLE: tuple[type[Exception], ...] = (DbqueryError, *PORTAL_UNAVAILABLE)
ERROR_TEXT_LIMIT = 1_000

log = logging.getLogger("dbquery.bot")


def explain(exc: Exception, doing: str) -> str:
    """The sentence for an answerable error; an unreachable database is logged (type only)."""
    if isinstance(exc, DbqueryError):
        return exc.message
    if isinstance(exc, PORTAL_UNAVAILABLE):
        log.warning("%s: the portal database did not answer (%s)", doing, type(exc).__name__)
        return PORTAL_DOWN
    raise exc


def as_message(exc: Exception, doing: str) -> dict[str, Any]:
    return {"text": explain(exc, doing)}


def field_of(exc: Exception | str, fields: Collection[str], fallback: str) -> str:
    """The modal field a problem belongs to: the one core named when the modal has it, else
    `fallback` (the field errors about the request as a whole are shown on)."""
    field = exc if isinstance(exc, str) else getattr(exc, "field", None)
    return field if field in fields else fallback


def field_errors(
    exc: Exception, doing: str, fields: Collection[str], fallback: str
) -> dict[str, str]:
    """`errors` for `response_action: errors`: the sentence under the field at fault."""
    text = explain(exc, doing)
    field = field_of(exc, fields, fallback) if isinstance(exc, InvalidSubmission) else fallback
    return {field: truncate(text, ERROR_TEXT_LIMIT)}


def tell_privately(
    client: WebClient, respond: Respond | None, user: UserRecord, exc: Exception, doing: str
) -> None:
    reply_privately(client, respond, user.slack_user_id or "", as_message(exc, doing))


def first_input_block(view: dict[str, Any]) -> str | None:
    """Where a modal can show an error that belongs to no field of its own."""
    for block in view.get("blocks") or []:
        if isinstance(block, dict) and block.get("type") == "input":
            block_id = block.get("block_id")
            if isinstance(block_id, str) and block_id:
                return block_id
    return None


__all__ = [
    "ANSWERABLE",
    "PORTAL_DOWN",
    "as_message",
    "explain",
    "field_errors",
    "field_of",
    "first_input_block",
    "tell_privately",
]
