"""Telling one person something privately, wherever Slack lets the app answer them."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.context.respond import Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

SLACK_FAILURES = (SlackApiError, SlackClientError, OSError)

log = logging.getLogger("dbquery.bot")


def slack_error(exc: Exception) -> str:
    """The Slack error code (e.g. 'channel_not_found'), never a token or a payload."""
    if isinstance(exc, SlackApiError):
        return str(exc.response.get("error") or "error")
    return type(exc).__name__


def reply_privately(
    client: WebClient, respond: Respond | None, slack_user_id: str, message: dict[str, Any]
) -> None:
    """An ephemeral answer: through response_url when Slack gave one (slash commands, message
    buttons), else in the person's DM with the app (App Home buttons have no response_url)."""
    try:
        if respond is not None and respond.response_url:
            respond(**message, response_type="ephemeral", replace_original=False)
            return
        channel = client.conversations_open(users=slack_user_id)["channel"]["id"]
        client.chat_postEphemeral(channel=channel, user=slack_user_id, **message)
    except SLACK_FAILURES as exc:
        log.warning("could not answer %s privately: %s", slack_user_id, slack_error(exc))


__all__ = ["SLACK_FAILURES", "reply_privately", "slack_error"]
