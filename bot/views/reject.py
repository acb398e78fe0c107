"""The modal a decider fills in to reject a request: one required reason."""

from __future__ import annotations

from typing import Any

from bot.views.limits import (
    MODAL_BUTTON_TEXT,
    MODAL_TITLE,
    PLACEHOLDER_TEXT,
    PLAIN_TEXT_INPUT_MAX,
    input_block,
    plain,
    section,
)
from bot.views.request_card import content_text, person, submission_label, target_text
from core.records import RequestRecord
from core.requests import REASON_MAX_CHARS

REJECT_CALLBACK = "reject_request"
REASON_BLOCK = "reason"
EXCERPT_LIMIT = 1_200


def reject_modal(request: RequestRecord) -> dict[str, Any]:
    """private_metadata carries only the request uuid; the listener re-checks who may decide."""
    summary = (
        f"Reject request `{request.short_id}` from {person(request.requester)}"
        f" on *{target_text(request)}*?\n{submission_label(request)}\n"
        f"{content_text(request, EXCERPT_LIMIT)}"
    )
    reason = {
        "type": "plain_text_input",
        "multiline": True,
        "max_length": min(REASON_MAX_CHARS, PLAIN_TEXT_INPUT_MAX),
        "placeholder": plain(
            "Tell the requester why, and what would make it acceptable", PLACEHOLDER_TEXT
        ),
    }
    return {
        "type": "modal",
        "callback_id": REJECT_CALLBACK,
        "private_metadata": str(request.uuid),
        "title": plain("Reject request", MODAL_TITLE),
        "submit": plain("Reject", MODAL_BUTTON_TEXT),
        "close": plain("Cancel", MODAL_BUTTON_TEXT),
        "blocks": [
            section(summary),
            input_block(
                REASON_BLOCK,
                "Reason",
                reason,
                hint="The requester sees this reason in the thread under their request.",
            ),
        ],
    }


__all__ = ["REASON_BLOCK", "REJECT_CALLBACK", "reject_modal"]
