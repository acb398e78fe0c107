"""A private notice (a sign-in or set-password link) as a DM: its text, the link as a button."""

from __future__ import annotations

from typing import Any

from bot.views.limits import BUTTON_TEXT, actions, fit_escaped, message, plain, section, slack_time
from core.events import PrivateNotice

NOTICE_LINK_ACTION = "private_notice_link"
LINK_URL_MAX = 3_000  # Slack's limit for a button's url
NOTICE_TEXT_LIMIT = 2_000


def notice_message(notice: PrivateNotice) -> dict[str, Any]:
    text = fit_escaped(notice.text, NOTICE_TEXT_LIMIT)
    if notice.expires_at is not None:
        text += f"\n_The link expires {slack_time(notice.expires_at)}._"
    blocks = [section(text)]
    if notice.link_url and len(notice.link_url) <= LINK_URL_MAX:
        link = {
            "type": "button",
            "text": plain(notice.link_label or "Open", BUTTON_TEXT),
            "action_id": NOTICE_LINK_ACTION,
            "url": notice.link_url,
            "style": "primary",
        }
        blocks.append(actions([link], block_id=NOTICE_LINK_ACTION))
    return message(notice.text, blocks)


__all__ = ["NOTICE_LINK_ACTION", "notice_message"]
