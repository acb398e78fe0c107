"""What arrives at POST /slack/events, checked before Bolt sees any of it.

The order matters. The signature is verified first, on the raw bytes: an unsigned request costs
one HMAC and gets a bare 401, whatever its body, so nobody without the signing secret can make
the parser (or the log) work. Only then is the body parsed, with limits (size, depth, encoding),
and its shape checked (bot.payloads) against an allow-list of the payload kinds dbquery listens
for, with the fields that Bolt's own request parsing and the listeners read typed as they
expect. Bolt is handed the parsed payload, so it never parses text itself.

Anything that fails gets a 400 with a one-line reason and no traceback. A well-formed payload of
a kind nobody listens for (view_closed, another event) is acknowledged with an empty 200, so
Slack does not redeliver it.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from slack_bolt import BoltRequest

from bot.payloads import Malformed, check_depth, events_api_dispatched, form_body, json_object

# Generous for Slack: a modal with every input at Slack's length limit is far smaller.
MAX_BODY_BYTES = 1_000_000
# Slack's advice: refuse a timestamp more than five minutes off (replay protection).
MAX_CLOCK_SKEW_S = 300

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"


@dataclass(frozen=True)
class Answer:
    """An answer given without Bolt: a refusal, or the acknowledgement of an ignored payload."""

    status: int
    text: str = ""


@dataclass(frozen=True)
class Envelope:
    """A signed, parsed and checked payload for Bolt."""

    body: dict[str, Any]
    raw: str


UNSIGNED = Answer(401, "invalid signature")
IGNORED = Answer(200)


def signature_is_valid(
    secret: str,
    headers: Mapping[str, str],
    raw: bytes,
    now: Callable[[], float] = time.time,
) -> bool:
    """Slack's v0 signature over the exact bytes received, with a fresh integer timestamp."""
    timestamp = headers.get("x-slack-request-timestamp") or ""
    signature = headers.get("x-slack-signature") or ""
    if not secret or not signature or not (timestamp.isascii() and timestamp.isdigit()):
        return False
    if len(timestamp) > 12 or abs(now() - int(timestamp)) > MAX_CLOCK_SKEW_S:
        return False
    base = b"v0:" + timestamp.encode() + b":" + raw
    expected = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace"))


def admit(
    secret: str,
    headers: Mapping[str, str],
    raw: bytes,
    now: Callable[[], float] = time.time,
) -> Answer | Envelope:
    """The answer to give at once, or the envelope to hand to Bolt."""
    if not signature_is_valid(secret, headers, raw, now):
        return UNSIGNED
    try:
        return parse_envelope(headers.get("content-type") or "", raw)
    except Malformed as exc:
        return Answer(400, str(exc))


def parse_envelope(content_type: str, raw: bytes) -> Answer | Envelope:
    if len(raw) > MAX_BODY_BYTES:
        raise Malformed("the body is too large")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Malformed("the body is not UTF-8") from None
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type == FORM:
        body, dispatched = form_body(text)
    elif media_type == JSON:
        body = json_object(text, "the body")
        check_depth(body)
        dispatched = events_api_dispatched(body)
    else:
        raise Malformed("the content type must be form-encoded or JSON")
    if not dispatched:
        return IGNORED
    return Envelope(body, text)


def bolt_request(
    envelope: Envelope, headers: Mapping[str, Any], context: dict[str, Any] | None = None
) -> BoltRequest:
    """A Bolt request carrying the checked payload, so Bolt does not parse the text again.

    Bolt only skips its own parsing for a dict body, which it otherwise treats as Socket Mode;
    the request is marked as HTTP again so that Bolt verifies the (already checked) signature
    over the raw body too.
    """
    request = BoltRequest(
        body=envelope.body, headers=dict(headers), context=context, mode="socket_mode"
    )
    request.mode = "http"
    request.raw_body = envelope.raw
    return request


__all__ = [
    "IGNORED",
    "UNSIGNED",
    "Answer",
    "Envelope",
    "admit",
    "bolt_request",
    "parse_envelope",
    "signature_is_valid",
]
