"""Thousands of mutated Slack requests against a real `dbquery serve`: never a 5xx, never a
traceback, and nothing half-written.

Each example starts from a real payload (the slash command, Approve and Reject clicks, the
submit and reject modals, an options request, app_home_opened, url_verification), applies a
few mutations drawn by hypothesis (a field deleted, a type swapped, NUL bytes, huge strings,
deep nesting), and is usually signed correctly; some are broken in transport instead (bad
signatures and timestamps, missing headers, bad encodings, the wrong content type, an empty or
null payload, 100,000 nested brackets). DBQUERY_FUZZ_EXAMPLES sets the count (`make fuzz`).
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import os
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
import psycopg
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.bot.conftest import SIGNING_SECRET, SlackSender, query_form
from tests.bot.fakeslack import FakeSlack
from tests.bot.serve_process import Served, prepare_portal, serve_env, start_serve
from tests.conftest import pg_url_for, wait_until

EXAMPLES = int(os.environ.get("DBQUERY_FUZZ_EXAMPLES", "1500"))
ANN = ("ann@example.com", "developer", "U0ANN")
MO = ("mo@example.com", "manager", "U0MO")
HUGE = 200_000
FORM = "application/x-www-form-urlencoded"
JSON = "application/json"


@pytest.fixture(scope="module")
def fuzzed(
    tmp_path_factory: pytest.TempPathFactory,
    fake_slack: FakeSlack,
    target_database: str,
    make_pg_database: Callable[[], str],
) -> Iterator[tuple[Served, str]]:
    """`serve` on a PostgreSQL portal (it refuses NUL bytes, SQLite would not)."""
    workdir = tmp_path_factory.mktemp("fuzz")
    portal_db = make_pg_database()
    env = serve_env(
        workdir, pg_url_for(portal_db, driver="psycopg"), target_database, fake_slack.api_url
    )
    prepare_portal(env, ANN, MO)
    served = start_serve(env, workdir / "serve.log")
    try:
        yield served, portal_db
    finally:
        served.stop()


# --- real payloads --------------------------------------------------------------------------------


def seeds(fake: FakeSlack, target: str, pending_uuid: str) -> dict[str, tuple[str, Any]]:
    """name -> (transport, payload): 'command' is form fields, 'payload' interactivity JSON,
    'event' an Events API body."""
    team = {"id": fake.team_id, "domain": "fake"}

    def user(slack_id: str) -> dict[str, str]:
        return {"id": slack_id, "team_id": fake.team_id}

    def click(action_id: str) -> dict[str, Any]:
        return {
            "type": "block_actions",
            "team": team,
            "user": user("U0MO"),
            "api_app_id": "A0DBQUERY",
            "trigger_id": "trigger-fuzz",
            "container": {"type": "message", "message_ts": "1.000001", "channel_id": "DU0MO"},
            "channel": {"id": "DU0MO", "name": "directmessage"},
            "message": {"ts": "1.000001", "text": "approval", "blocks": []},
            "response_url": fake.response_url("fuzz-click"),
            "actions": [
                {
                    "type": "button",
                    "action_id": action_id,
                    "block_id": f"decision:{pending_uuid}",
                    "value": pending_uuid,
                    "action_ts": "1.1",
                }
            ],
        }

    def modal(callback_id: str, values: dict[str, Any], metadata: str = "") -> dict[str, Any]:
        return {
            "type": "view_submission",
            "team": team,
            "user": user("U0ANN" if callback_id == "submit_request" else "U0MO"),
            "api_app_id": "A0DBQUERY",
            "trigger_id": "trigger-fuzz",
            "view": {
                "id": "VFUZZ",
                "type": "modal",
                "callback_id": callback_id,
                "private_metadata": metadata,
                "blocks": [{"type": "input", "block_id": block} for block in values],
                "state": {"values": {b: {b: state} for b, state in values.items()}},
                "hash": "h1",
            },
        }

    return {
        "command": (
            "command",
            {
                "token": "legacy",
                "team_id": fake.team_id,
                "channel_id": "C0GENERAL",
                "user_id": "U0ANN",
                "command": "/dbquery",
                "text": "list",
                "api_app_id": "A0DBQUERY",
                "response_url": fake.response_url("fuzz-cmd"),
                "trigger_id": "trigger-fuzz",
            },
        ),
        "approve": ("payload", click("approve_request")),
        "reject_click": ("payload", click("reject_request")),
        "submit": ("payload", modal("submit_request", query_form(target, "SELECT 1", "fuzz"))),
        "reject_modal": (
            "payload",
            modal(
                "reject_request",
                {"reason": {"type": "plain_text_input", "value": "no"}},
                pending_uuid,
            ),
        ),
        "options": (
            "payload",
            {
                "type": "block_suggestion",
                "team": team,
                "user": user("U0ANN"),
                "action_id": "target",
                "block_id": "target",
                "value": "pg",
                "view": {"id": "VFUZZ", "type": "modal", "callback_id": "submit_request"},
            },
        ),
        "home": (
            "event",
            {
                "token": "legacy",
                "team_id": fake.team_id,
                "api_app_id": "A0DBQUERY",
                "type": "event_callback",
                "event_id": "EvFUZZ",
                "event_time": 1,
                "event": {"type": "app_home_opened", "user": "U0MO", "tab": "home"},
            },
        ),
        "url_verification": ("event", {"type": "url_verification", "challenge": "c-fuzz"}),
    }


def sign_bytes(body: bytes, timestamp: str, secret: str = SIGNING_SECRET) -> str:
    """Slack's signature over exactly these bytes (which need not be UTF-8)."""
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


# --- mutations ------------------------------------------------------------------------------------


def paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path to a value inside `value` (keys and list indexes)."""
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += paths(item, (*prefix, index))
    return found


def nested(depth: int) -> Any:
    value: Any = "deep"
    for _ in range(depth):
        value = [value]
    return value


SWAPS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=6), st.integers(), max_size=3),
    st.just("U0ANN\x00"),
)

MUTATIONS = ("delete", "swap", "nul", "huge", "deep")
TRANSPORT = (
    "bad_signature",
    "no_signature",
    "no_timestamp",
    "timestamp_text",
    "timestamp_float",
    "timestamp_stale",
    "other_secret",
    "latin1_bytes",
    "invalid_utf8",
    "truncated",
    "wrong_content_type",
    "form_as_json",
    "payload_empty",
    "payload_null",
    "payload_invalid",
    "brackets",
)
UNSIGNED = {
    "bad_signature",
    "no_signature",
    "no_timestamp",
    "timestamp_text",
    "timestamp_float",
    "timestamp_stale",
    "other_secret",
}


def mutate(data: st.DataObject, payload: Any, transport: str) -> Any:
    payload = copy.deepcopy(payload)
    for _ in range(data.draw(st.integers(min_value=1, max_value=3), label="mutations")):
        where = paths(payload)
        if not where:
            break
        path = data.draw(st.sampled_from(where), label="path")
        kind = data.draw(st.sampled_from(MUTATIONS), label="mutation")
        parent = payload
        for step in path[:-1]:
            parent = parent[step]
        last = path[-1]
        current = parent[last]
        if kind == "delete":
            del parent[last]
            continue
        if kind == "swap":
            value = data.draw(SWAPS, label="swapped in")
        elif kind == "nul":
            value = (current if isinstance(current, str) else str(current)) + "\x00"
        elif kind == "huge":
            value = "x" * HUGE
        else:
            value = nested(data.draw(st.integers(min_value=10, max_value=400), label="depth"))
        if transport == "command":
            # A form field is always text.
            value = value if isinstance(value, str) else json.dumps(value)
        parent[last] = value
    return payload


def encode(transport: str, payload: Any) -> tuple[bytes, str]:
    if transport == "command":
        return urlencode(payload).encode(), FORM
    if transport == "payload":
        return urlencode({"payload": json.dumps(payload)}).encode(), FORM
    return json.dumps(payload).encode(), JSON


def break_transport(how: str, body: bytes, content_type: str) -> tuple[bytes, str, dict]:
    """The body, content type and header changes of a request broken in transport."""
    now = str(int(time.time()))
    headers: dict[str, str | None] = {}
    if how == "bad_signature":
        headers["X-Slack-Signature"] = "v0=" + "0" * 64
    elif how == "no_signature":
        headers["X-Slack-Signature"] = None
    elif how == "no_timestamp":
        headers["X-Slack-Request-Timestamp"] = None
    elif how == "timestamp_text":
        headers["X-Slack-Request-Timestamp"] = "abc"
    elif how == "timestamp_float":
        headers["X-Slack-Request-Timestamp"] = now + ".916"
    elif how == "timestamp_stale":
        headers["X-Slack-Request-Timestamp"] = str(int(time.time()) - 3600)
    elif how == "other_secret":
        headers["X-Slack-Signature"] = sign_bytes(body, now, "not-the-secret")
    elif how == "latin1_bytes":
        body = body.replace(b"U0", "U\xe9".encode("latin-1"), 1)
    elif how == "invalid_utf8":
        body = body[: len(body) // 2] + b"\xff\xfe" + body[len(body) // 2 :]
    elif how == "truncated":
        body = body[: len(body) // 2]
    elif how == "wrong_content_type":
        content_type = "text/plain"
    elif how == "form_as_json":
        content_type = JSON if content_type == FORM else FORM
    elif how == "payload_empty":
        body, content_type = b"payload=", FORM
    elif how == "payload_null":
        body, content_type = b"payload=null", FORM
    elif how == "payload_invalid":
        body, content_type = b"payload=%7B%22type%22%3A", FORM
    elif how == "brackets":
        body = b"[" * 100_000 + b"]" * 100_000
    return body, content_type, headers


def send(
    http: httpx.Client, url: str, body: bytes, content_type: str, changes: dict
) -> httpx.Response:
    timestamp = str(int(time.time()))
    stamped = changes.get("X-Slack-Request-Timestamp", timestamp)
    signed_with = stamped if stamped is not None else timestamp
    headers: dict[str, str | None] = {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": stamped,
        "X-Slack-Signature": sign_bytes(body, signed_with),
    }
    if "X-Slack-Signature" in changes:
        headers["X-Slack-Signature"] = changes["X-Slack-Signature"]
    sent = {k: v for k, v in headers.items() if v is not None}
    return http.post(url, content=body, headers=sent)


# --- the test -------------------------------------------------------------------------------------


def test_mutated_requests_never_get_a_5xx_nor_leave_a_traceback(
    fuzzed: tuple[Served, str], fake_slack: FakeSlack, target_database: str
):
    served, portal_db = fuzzed
    target = f"pg-shop/{target_database}"
    sender = SlackSender(served.url, fake_slack)
    form = query_form(target, "SELECT customer FROM orders", "to decide on")
    assert sender.submit_view("U0ANN", "submit_request", form).text == ""
    pending = uuid.UUID(portal_rows(portal_db)[0][0])
    real = seeds(fake_slack, target, str(pending))
    url = served.url + "/slack/events"
    http = httpx.Client(timeout=30)
    answers: Counter[int] = Counter()
    misanswered: list[str] = []
    started = time.monotonic()

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=(Phase.generate, Phase.shrink),
        suppress_health_check=list(HealthCheck),
    )
    @given(data=st.data())
    def one_request(data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(sorted(real)), label="seed")
        transport, payload = real[name]
        # About one request in six is broken in transport; the rest are signed correctly.
        broken = data.draw(
            st.one_of(st.none(), st.none(), st.none(), st.sampled_from(TRANSPORT)),
            label="transport",
        )
        if broken is None or data.draw(st.integers(0, 5), label="also mutate") == 0:
            payload = mutate(data, payload, transport)
        body, content_type = encode(transport, payload)
        changes: dict = {}
        if broken is not None:
            body, content_type, changes = break_transport(broken, body, content_type)
        response = send(http, url, body, content_type, changes)
        answers[response.status_code] += 1
        assert response.status_code < 500, f"{name}/{broken}: {response.status_code}"
        if broken in UNSIGNED and response.status_code != 401:
            misanswered.append(f"{name}/{broken}: {response.status_code}")

    one_request()
    elapsed = time.monotonic() - started
    sent = sum(answers.values())
    # Follow-ups (cards, DMs, executions) run after the answers; let them finish.
    wait_until(lambda: not any(r[1] == "executing" for r in portal_rows(portal_db)), 30)
    rows = portal_rows(portal_db)
    log = served.log.read_text(errors="replace")
    tracebacks = log.count("Traceback")
    print(
        f"\nfuzz: {sent} requests in {elapsed:.1f}s; answers {dict(sorted(answers.items()))}; "
        f"5xx {sum(n for s, n in answers.items() if s >= 500)}; tracebacks {tracebacks}; "
        f"requests stored {len(rows)}"
    )
    assert sent >= EXAMPLES
    assert not misanswered, misanswered[:10]
    assert tracebacks == 0, log[log.index("Traceback") - 500 :][:3000]
    # Nothing half-written: every stored request went all the way through submission (its
    # card was posted to the requester) and none holds a NUL byte.
    posted = json.dumps([c.args for c in fake_slack.calls_to("chat.postMessage")])
    assert all(row[0] in posted for row in rows)
    assert not any("\x00" in (row[2] or "") for row in rows)


def portal_rows(portal_db: str) -> list[tuple[str, str, str]]:
    with psycopg.connect(pg_url_for(portal_db)) as conn:
        return [
            (str(uuid_), status, content)
            for uuid_, status, content in conn.execute(
                "SELECT uuid, status, query_content FROM query_requests ORDER BY created_at"
            )
        ]
