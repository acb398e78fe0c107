"""Slack's Block Kit limits, and the small constructors that keep every payload inside them.

Numbers come from Slack's reference pages (docs.slack.dev: blocks, block elements, composition
objects, view objects, chat.postMessage). Every builder in bot/views goes through the
constructors here, so a 100 KB query or a 500-target catalogue is cut visibly instead of being
rejected by Slack with `invalid_blocks`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

# --- surfaces -------------------------------------------------------------------------------
MAX_BLOCKS_MESSAGE = 50
MAX_BLOCKS_VIEW = 100  # modals and the Home tab
MAX_BLOCKS_MODAL = MAX_BLOCKS_VIEW
MAX_BLOCKS_HOME = MAX_BLOCKS_VIEW
MESSAGE_TEXT = 40_000  # chat.postMessage truncates the top-level `text` beyond this
# Slack rejects messages whose blocks add up to roughly 13,000 characters with
# `msg_blocks_too_long` even when every block is within its own limit (slackapi/bolt-js#2509);
# builders keep a message's block text under this budget.
MESSAGE_BLOCKS_BUDGET = 12_000
MODAL_TITLE = 24  # also the submit and close buttons of a modal
MODAL_BUTTON_TEXT = 24
PRIVATE_METADATA = 3_000
CALLBACK_ID = 255

# --- blocks ---------------------------------------------------------------------------------
BLOCK_ID = 255
SECTION_TEXT = 3_000
FIELD_TEXT = 2_000
MAX_FIELDS = 10
HEADER_TEXT = 150
CONTEXT_ELEMENTS = 10
CONTEXT_TEXT = 3_000  # a text object's own limit
ACTIONS_ELEMENTS = 25
INPUT_LABEL = 2_000
INPUT_HINT = 2_000

# --- elements and composition objects -------------------------------------------------------
ACTION_ID = 255
BUTTON_TEXT = 75
BUTTON_VALUE = 2_000
PLACEHOLDER_TEXT = 150
PLAIN_TEXT_INPUT_MAX = 3_000
OPTIONS_MAX = 100
OPTION_GROUPS_MAX = 100
OPTION_TEXT = 75
OPTION_VALUE = 150
OPTION_GROUP_LABEL = 75
RADIO_OPTIONS_MAX = 10
FILE_INPUT_MAX_FILES = 10
CONFIRM_TITLE = 100
CONFIRM_TEXT = 300
CONFIRM_BUTTON = 30

ELLIPSIS = "…"
_FENCE = "```"
# A zero-width space between backticks keeps user text from closing our code fence early.
_BROKEN_FENCE = "`\u200b`\u200b`"


# --- measuring and cutting text -------------------------------------------------------------


def slack_len(text: str) -> int:
    """Length as Slack is most likely to count it.

    Slack says "characters" without saying how it counts; UTF-16 code units (an emoji is two)
    are never fewer than code points, so text that fits by this measure fits by either.
    """
    return len(text.encode("utf-16-le")) // 2


def _fit(pieces: list[str], budget: int) -> int:
    """How many leading pieces fit into `budget` Slack characters."""
    used = 0
    for count, piece in enumerate(pieces):
        used += slack_len(piece)
        if used > budget:
            return count
    return len(pieces)


def truncate(text: str, limit: int, note: str = ELLIPSIS) -> str:
    """`text` if it fits `limit`, else its start followed by `note`, together within `limit`."""
    # Every code point counts at least one, so only the first `limit + 1` can matter.
    head = text[: limit + 1]
    if len(head) <= limit and slack_len(head) <= limit:
        return text
    if slack_len(note) >= limit:
        return note[: _fit(list(note), limit)]
    return head[: _fit(list(head), limit - slack_len(note))] + note


def escape_mrkdwn(text: str) -> str:
    """Escape the three characters Slack treats as control sequences in mrkdwn.

    Also stops user text from forming mentions such as <!channel> or links.
    """
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def fit_escaped(text: str, limit: int, note: str = ELLIPSIS) -> str:
    """Escape `text` for mrkdwn and cut it to `limit` without splitting an entity like &amp;.

    Triple backticks are broken up too, so user text cannot open a code block.
    """
    text = break_fences(text[: limit + 1]) if len(text) > limit else break_fences(text)
    if len(text) <= limit:
        escaped = escape_mrkdwn(text)
        if slack_len(escaped) <= limit:
            return escaped
    # Escaping never shortens a character, so only the first `limit + 1` can matter.
    pieces = [escape_mrkdwn(ch) for ch in text[: limit + 1]]
    kept = _fit(pieces, max(limit - slack_len(note), 0))
    return "".join(pieces[:kept]) + note


def quote(text: str, limit: int, note: str = f"\n_{ELLIPSIS} cut to fit Slack_") -> str:
    """`text` as an escaped mrkdwn block quote within `limit`, cut visibly when it is longer."""
    text = break_fences(text.strip())
    pieces = ["> "] + [("\n> " if ch == "\n" else escape_mrkdwn(ch)) for ch in text[:limit]]
    if len(text) <= limit and _fit(pieces, limit) == len(pieces):
        return "".join(pieces)
    kept = _fit(pieces, max(limit - slack_len(ELLIPSIS + note), 0))
    return "".join(pieces[:kept]) + ELLIPSIS + note


def break_fences(text: str) -> str:
    """Triple backticks inside user text would end our code block; break them up."""
    while _FENCE in text:
        text = text.replace(_FENCE, _BROKEN_FENCE)
    return text


def code_block(text: str, limit: int, *, what: str = "text") -> str:
    """A mrkdwn code block of `text` within `limit`, with a visible note when it was cut.

    The cut falls on a line boundary when one is near, and the note says how much is shown.
    """
    body = break_fences(text.rstrip("\n")) or "(empty)"
    if len(body) <= limit:
        whole = f"{_FENCE}\n{escape_mrkdwn(body)}\n{_FENCE}"
        if slack_len(whole) <= limit:
            return whole
    total_lines = body.count("\n") + 1

    def note(shown_lines: int) -> str:
        return (
            f"\n_{ELLIPSIS} cut to fit Slack: {what} shows {shown_lines:,} of {total_lines:,}"
            f" lines ({len(text):,} characters)_"
        )

    # The final note has no more digits than this one, so reserving its length is enough.
    room = limit - slack_len(note(total_lines)) - slack_len(f"{_FENCE}\n\n{_FENCE}")
    shown = fit_escaped(body, max(room, 0), note="")
    newline = shown.rfind("\n")
    if newline > len(shown) // 2:
        shown = shown[:newline]
    shown = shown.rstrip("`") or ELLIPSIS  # a trailing backtick would touch the closing fence
    return f"{_FENCE}\n{shown}\n{_FENCE}{note(shown.count(chr(10)) + 1)}"


def count_note(shown: int, total: int, noun: str, where: str = "") -> str:
    """'… and 12 more requests' (plus where to find them) for a list that was cut."""
    rest = total - shown
    hint = f" ({where})" if where else ""
    return f"{ELLIPSIS} and {rest:,} more {noun}{hint}"


# --- dates and people -----------------------------------------------------------------------


def utc(moment: datetime) -> datetime:
    """Portal timestamps are UTC; SQLite hands them back naive."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def plain_time(moment: datetime | None) -> str:
    if moment is None:
        return "—"
    return f"{utc(moment):%Y-%m-%d %H:%M} UTC"


def slack_time(moment: datetime | None) -> str:
    """Slack shows <!date> in each reader's own time zone; clients that can't fall back to UTC."""
    if moment is None:
        return "—"
    stamp = int(utc(moment).timestamp())
    return f"<!date^{stamp}^{{date_short_pretty}} {{time}}|{plain_time(moment)}>"


# --- text objects and blocks that fit -------------------------------------------------------


def plain(text: str, limit: int) -> dict[str, Any]:
    return {"type": "plain_text", "text": truncate(text, limit) or " ", "emoji": True}


def mrkdwn(text: str, limit: int = SECTION_TEXT) -> dict[str, Any]:
    """A mrkdwn text object; `text` is already escaped and formatted by the caller."""
    return {"type": "mrkdwn", "text": truncate(text, limit) or " "}


def header(text: str) -> dict[str, Any]:
    return {"type": "header", "text": plain(text, HEADER_TEXT)}


def section(text: str, *, block_id: str | None = None) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "section", "text": mrkdwn(text, SECTION_TEXT)}
    if block_id:
        block["block_id"] = block_id[:BLOCK_ID]
    return block


def fields_section(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """A two-column section of '*label*\\nvalue' fields (values are mrkdwn, already escaped)."""
    fields = [mrkdwn(f"*{label}*\n{value}", FIELD_TEXT) for label, value in pairs[:MAX_FIELDS]]
    return {"type": "section", "fields": fields}


def context(*texts: str) -> dict[str, Any]:
    elements = [mrkdwn(t, CONTEXT_TEXT) for t in texts if t][:CONTEXT_ELEMENTS]
    return {"type": "context", "elements": elements or [mrkdwn(" ")]}


def divider() -> dict[str, Any]:
    return {"type": "divider"}


def button(
    text: str,
    action_id: str,
    value: str,
    *,
    style: str | None = None,
    confirm: dict[str, Any] | None = None,
) -> dict[str, Any]:
    if slack_len(value) > BUTTON_VALUE:
        raise ValueError(f"a button value is limited to {BUTTON_VALUE} characters")
    element: dict[str, Any] = {
        "type": "button",
        "text": plain(text, BUTTON_TEXT),
        "action_id": action_id,
        "value": value,
    }
    if style:
        element["style"] = style
    if confirm:
        element["confirm"] = confirm
    return element


def confirm_dialog(
    title: str, text: str, confirm: str, deny: str, *, style: str = "primary"
) -> dict[str, Any]:
    return {
        "title": plain(title, CONFIRM_TITLE),
        "text": plain(text, CONFIRM_TEXT),
        "confirm": plain(confirm, CONFIRM_BUTTON),
        "deny": plain(deny, CONFIRM_BUTTON),
        "style": style,
    }


def actions(elements: list[dict[str, Any]], *, block_id: str) -> dict[str, Any]:
    return {"type": "actions", "block_id": block_id[:BLOCK_ID], "elements": elements}


def input_block(
    block_id: str,
    label: str,
    element: dict[str, Any],
    *,
    optional: bool = False,
    hint: str | None = None,
) -> dict[str, Any]:
    """An input block whose element has action_id == block_id (payload parsing relies on it)."""
    block: dict[str, Any] = {
        "type": "input",
        "block_id": block_id,
        "label": plain(label, INPUT_LABEL),
        "element": {**element, "action_id": block_id},
        "optional": optional,
    }
    if hint:
        block["hint"] = plain(hint, INPUT_HINT)
    return block


def option(text: str, value: str) -> dict[str, Any]:
    if slack_len(value) > OPTION_VALUE:
        raise ValueError(f"an option value is limited to {OPTION_VALUE} characters")
    return {"text": plain(text, OPTION_TEXT), "value": value}


def fallback_text(text: str) -> str:
    """The top-level `text` of a message from plain words: escaped, because Slack parses it as
    mrkdwn in notifications, and cut to the message limit."""
    return fit_escaped(break_fences(text), MESSAGE_TEXT) or " "


def message(text: str, blocks: list[dict[str, Any]]) -> dict[str, Any]:
    """A chat message: its blocks, with `text` (plain words) as the fallback that notifications
    and screen readers show."""
    return {"text": fallback_text(text), "blocks": blocks}


def blocks_chars(node: Any) -> int:
    """Characters of every string in a block tree: what Slack's message-size check sees."""
    if isinstance(node, str):
        return slack_len(node)
    if isinstance(node, dict):
        return sum(blocks_chars(v) for v in node.values())
    if isinstance(node, list):
        return sum(blocks_chars(v) for v in node)
    return 0


def take_items(
    items: list[list[dict[str, Any]]], *, max_blocks: int, max_chars: int | None = None
) -> tuple[list[dict[str, Any]], int]:
    """Whole items (each a few blocks) in order while both budgets hold; and how many fit."""
    taken: list[dict[str, Any]] = []
    chars = 0
    for count, item in enumerate(items):
        size = blocks_chars(item)
        if len(taken) + len(item) > max_blocks or (
            max_chars is not None and chars + size > max_chars
        ):
            return taken, count
        taken.extend(item)
        chars += size
    return taken, len(items)
