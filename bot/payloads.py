"""The allow-list of payloads dbquery listens for, and the shape each must have.

Parsing has limits (depth, form fields) and every field Bolt's request parsing or a listener
reads is checked to be of the type they expect; bot.intake (HTTP, after the signature) and
bot.socket_mode apply the same checks. Anything else raises Malformed with a one-line reason.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl, urlsplit

MAX_DEPTH = 48
MAX_FORM_FIELDS = 64
SLACK_ID = re.compile(r"[A-Z0-9]{2,32}")
# Slack's identifiers and names: action and block ids are up to 255 characters.
MAX_ID_CHARS = 255
COMMAND = "/dbquery"  # the slash command bot.listeners.commands registers

# The payload kinds that reach Bolt (the listeners registered in bot.app).
DISPATCHED_INTERACTIONS = frozenset({"block_actions", "view_submission", "block_suggestion"})
DISPATCHED_EVENTS = frozenset({"app_home_opened"})
VIEW_TYPES = ("modal", "home")


class Malformed(Exception):
    """The request cannot be understood; the message says why (it is the 400's body)."""


def check_socket_payload(kind: str, payload: Any) -> bool:
    """Whether a Socket Mode envelope's payload goes to Bolt: the same allow-list and shape
    checks as over HTTP (the signature is the WebSocket's own authentication there)."""
    if not isinstance(payload, dict):
        raise Malformed("the envelope has no payload object")
    check_depth(payload)
    if kind == "slash_commands":
        if not all(isinstance(value, str) for value in payload.values()):
            raise Malformed("a slash command's fields are strings")
        return command_dispatched(payload)
    if kind == "interactive":
        return interactivity_dispatched(payload)
    if kind == "events_api":
        return events_api_dispatched(payload)
    return False


# --- parsing ------------------------------------------------------------------------------------


def json_object(text: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):  # JSONDecodeError, huge integers, deep nesting
        raise Malformed(f"{what} is not valid JSON") from None
    if not isinstance(value, dict):
        raise Malformed(f"{what} is not a JSON object")
    return value


def form_body(text: str) -> tuple[dict[str, Any], bool]:
    """A slash command's fields, or an interactivity payload (JSON in the `payload` field)."""
    try:
        pairs = parse_qsl(
            text,
            keep_blank_values=True,
            errors="strict",
            max_num_fields=MAX_FORM_FIELDS,
        )
    except (ValueError, UnicodeDecodeError):
        raise Malformed("the form is not valid") from None
    fields = dict(pairs)
    if "payload" in fields:
        if not fields["payload"]:
            raise Malformed("the payload is empty")
        body = json_object(fields["payload"], "the payload")
        check_depth(body)
        return body, interactivity_dispatched(body)
    if "command" in fields:
        return fields, command_dispatched(fields)
    if fields.get("ssl_check"):
        return fields, False
    raise Malformed("the form holds neither a command nor a payload")


def check_depth(body: dict[str, Any]) -> None:
    stack: list[tuple[Any, int]] = [(body, 0)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise Malformed("the payload is nested too deeply")
        if isinstance(value, dict):
            stack.extend((item, depth + 1) for item in value.values())
        elif isinstance(value, list):
            stack.extend((item, depth + 1) for item in value)


# --- shapes ---------------------------------------------------------------------------------------


def _kind(body: dict[str, Any]) -> str | None:
    kind = body.get("type")
    return kind if isinstance(kind, str) and kind else None


def interactivity_dispatched(body: dict[str, Any]) -> bool:
    """Whether Bolt should see the payload; Malformed when it is of a kind dbquery listens for
    but not shaped as Slack sends it."""
    kind = _kind(body)
    if kind is None:
        raise Malformed("the payload has no type")
    if kind in DISPATCHED_INTERACTIONS:
        _interaction(body, kind)
        return True
    return False


def events_api_dispatched(body: dict[str, Any]) -> bool:
    kind = _kind(body)
    if kind is None:
        raise Malformed("an event needs a type")
    if kind == "url_verification":
        _text(body, "challenge", required=True, limit=MAX_ID_CHARS)
        return True
    if kind == "event_callback":
        return _event(body)
    return False


def command_dispatched(body: dict[str, Any]) -> bool:
    # Form values are always strings; what matters is who sent it and that no identifier Slack
    # would never send (a NUL byte, an unknown user id format) reaches the database.
    if body.get("command") != COMMAND:
        return False
    _slack_id(body.get("user_id"), "user_id")
    _url(body, "response_url")
    for key, value in body.items():
        if key != "text" and "\x00" in value:
            raise Malformed(f"{key} holds a NUL byte")
    return True


def _event(body: dict[str, Any]) -> bool:
    event = body.get("event")
    if not isinstance(event, dict):
        raise Malformed("an event callback needs an event object")
    _common(body)
    if _text(event, "type", required=True, limit=MAX_ID_CHARS) not in DISPATCHED_EVENTS:
        return False
    _slack_id(event.get("user"), "event.user")
    for key in ("tab", "channel", "team", "user_team", "thread_ts"):
        _text(event, key)
    _plain_strings(body, "the event")
    return True


def _interaction(body: dict[str, Any], kind: str) -> None:
    user = body.get("user")
    if not isinstance(user, dict):
        raise Malformed("the payload has no user")
    _slack_id(user.get("id"), "user.id")
    _common(body)
    _text(body, "trigger_id", limit=MAX_ID_CHARS)
    _url(body, "response_url")
    _object(body, "container")
    _object(body, "message")
    view = _object(body, "view", required=kind == "view_submission")
    if view is not None:
        for key in ("id", "callback_id", "hash", "app_installed_team_id", "team_id"):
            required = kind == "view_submission" and key == "callback_id"
            _text(view, key, required=required, limit=MAX_ID_CHARS)
        # Bolt reads a workflow step's own fields for any other view type.
        if view.get("type") not in VIEW_TYPES and (kind == "view_submission" or "type" in view):
            raise Malformed("the view must be a modal or the Home tab")
        _text(view, "private_metadata", limit=3_000)
        _objects(view, "blocks")
        state = _object(view, "state")
        if state is not None:
            _object(state, "values")
    if kind == "block_actions":
        actions = body.get("actions")
        if not isinstance(actions, list) or not actions:
            raise Malformed("block_actions needs actions")
        for action in actions:
            if not isinstance(action, dict):
                raise Malformed("each action must be an object")
            _text(action, "action_id", required=True, limit=MAX_ID_CHARS)
            _text(action, "block_id", limit=MAX_ID_CHARS)
            _text(action, "value", limit=2_000)
    if kind == "block_suggestion":
        _text(body, "action_id", required=True, limit=MAX_ID_CHARS)
        _text(body, "block_id", limit=MAX_ID_CHARS)
        _text(body, "value", limit=MAX_ID_CHARS)
    # What people typed (the modal's state) is checked by its listener, field by field, so a
    # problem shows where it was typed; everything else comes from Slack and must be clean.
    outside_state = {k: v for k, v in body.items() if k != "view"}
    if view is not None:
        outside_state["view"] = {k: v for k, v in view.items() if k != "state"}
    _plain_strings(outside_state, "the payload")


def _common(body: dict[str, Any]) -> None:
    """The fields Bolt reads from every payload to build its context."""
    for key in ("team", "enterprise", "channel"):
        value = body.get(key)
        if value is None or isinstance(value, str):
            continue
        if not isinstance(value, dict):
            raise Malformed(f"{key} must be an object")
        _text(value, "id", limit=MAX_ID_CHARS)
        _text(value, "enterprise_id", limit=MAX_ID_CHARS)
    for key in ("team_id", "enterprise_id", "user_id", "channel_id", "thread_ts", "api_app_id"):
        _text(body, key, limit=MAX_ID_CHARS)
    for key in ("authorizations", "response_urls"):
        _objects(body, key)
    for authorization in body.get("authorizations") or []:
        for key in ("team_id", "enterprise_id", "user_id"):
            _text(authorization, key, limit=MAX_ID_CHARS)
    for response_url in body.get("response_urls") or []:
        _url(response_url, "response_url")
    if body.get("is_ext_shared_channel") not in (None, True, False):
        raise Malformed("is_ext_shared_channel must be a boolean")
    if "function_execution_id" in body or "function_data" in body:
        raise Malformed("dbquery has no workflow functions")


def _slack_id(value: Any, where: str) -> str:
    if not isinstance(value, str) or not SLACK_ID.fullmatch(value):
        raise Malformed(f"{where} is not a Slack id")
    return value


def _text(
    container: dict[str, Any], key: str, *, required: bool = False, limit: int | None = None
) -> str | None:
    value = container.get(key)
    if value is None:
        if required:
            raise Malformed(f"{key} is missing")
        return None
    if not isinstance(value, str):
        raise Malformed(f"{key} must be a string")
    if limit is not None and len(value) > limit:
        raise Malformed(f"{key} is too long")
    return value


def _url(container: dict[str, Any], key: str) -> None:
    """Slack's response URLs are https links (plain http on a test host)."""
    value = _text(container, key, limit=MAX_ID_CHARS)
    if not value:
        return
    try:
        parts = urlsplit(value)
        valid = parts.scheme in ("https", "http") and bool(parts.hostname)
    except ValueError:  # a bracketed host that is not an IPv6 address, for one
        valid = False
    if not valid:
        raise Malformed(f"{key} is not a URL")


def _object(container: dict[str, Any], key: str, *, required: bool = False) -> dict | None:
    value = container.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, dict):
        raise Malformed(f"{key} must be an object")
    return value


def _objects(container: dict[str, Any], key: str) -> None:
    value = container.get(key)
    if value is None:
        return
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise Malformed(f"{key} must be a list of objects")


def _plain_strings(value: Any, what: str) -> None:
    """No NUL byte anywhere: PostgreSQL cannot store one, and Slack never sends one."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise Malformed(f"{what} holds a NUL byte")
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


__all__ = ["COMMAND", "Malformed", "check_socket_payload"]
