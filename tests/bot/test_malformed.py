"""Requests that are not signed correctly get a bare 401; requests that cannot be understood get a
400 or a polite private answer. Never a 5xx, never a traceback, never a half-written row."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections import Counter
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from slack_bolt.request.payload_utils import (
    to_action,
    to_command,
    to_event,
    to_message,
    to_options,
    to_shortcut,
    to_step,
    to_view,
)

from bot.intake import Answer, bolt_request, parse_envelope
from bot.payloads import Malformed
from tests.bot.conftest import SIGNING_SECRET, BotServer, query_form, sign

FORM = "application/x-www-form-urlencoded"


@pytest.fixture(autouse=True)
def no_tracebacks(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.INFO)
    yield
    failures = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not failures, [r.getMessage() for r in failures]


def click_payload(bot: BotServer, **changes: Any) -> dict[str, Any]:
    payload = {
        "type": "block_actions",
        "team": {"id": bot.fake.team_id},
        "user": {"id": "U0MO", "team_id": bot.fake.team_id},
        "trigger_id": "trigger-x",
        "response_url": bot.fake.response_url("malformed"),
        "actions": [{"action_id": "approve_request", "value": "not-a-uuid", "type": "button"}],
    }
    payload.update(changes)
    return {k: v for k, v in payload.items() if v is not ...}


def post_raw(bot: BotServer, body: bytes, content_type: str, **headers: str):
    timestamp = str(int(time.time()))
    sent = {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": sign_bytes(body, timestamp),
        **headers,
    }
    return bot.sender.http.post(bot.sender.url, content=body, headers=sent)


def sign_bytes(body: bytes, timestamp: str, secret: str = SIGNING_SECRET) -> str:
    """Slack's signature over exactly these bytes (which need not be UTF-8)."""
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


# --- signatures come first ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "timestamp",
    [
        "abc",
        "1795980466.916",
        "-5",
        "",
    ],
)
def test_a_timestamp_that_is_not_an_integer_is_a_plain_401(bot: BotServer, timestamp: str):
    body = urlencode({"payload": json.dumps(click_payload(bot))})
    headers = {"X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": sign(body, timestamp)}
    response = bot.sender.http.post(
        bot.sender.url, content=body.encode(), headers={"Content-Type": FORM, **headers}
    )
    assert response.status_code == 401
    assert "Traceback" not in response.text
    metrics = bot.sender.http.get(bot.url + "/metrics").text
    assert 'dbquery_slack_requests_refused_total{status="401"}' in metrics


@pytest.mark.parametrize("missing", ["X-Slack-Request-Timestamp", "X-Slack-Signature"])
def test_a_request_without_its_signature_headers_is_refused(bot: BotServer, missing: str):
    body = b"payload=%7B%7D"
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": FORM,
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": sign_bytes(body, timestamp),
    }
    del headers[missing]
    assert bot.sender.http.post(bot.sender.url, content=body, headers=headers).status_code == 401


@pytest.mark.parametrize(
    "body",
    [b"payload=%7B", b"payload=\xff\xfe", b"[" * 100_000 + b"]" * 100_000, b"\x00\x01\x02"],
)
def test_garbage_with_a_bad_signature_is_a_401_before_any_parsing(bot: BotServer, body: bytes):
    response = post_raw(bot, body, FORM, **{"X-Slack-Signature": "v0=" + "0" * 64})
    assert response.status_code == 401


# --- then the body is parsed, defensively ---------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"payload=%7B%22type%22%3A", FORM),  # invalid JSON
        (b"payload=\xff\xfe\xfd", FORM),  # not UTF-8
        (b"payload=%C3%28", FORM),  # a bad UTF-8 sequence, percent-encoded
        (b"payload=null", FORM),  # JSON null
        (b"payload=%5B1%2C2%5D", FORM),  # a JSON list
        (b"payload=", FORM),  # empty
        (b"payload=" + b"%5B" * 100_000 + b"%5D" * 100_000, FORM),  # 100,000 nested brackets
        (b"[" * 100_000 + b"]" * 100_000, "application/json"),
        (b"command=%2Fdbquery&user_id=U0ANN&text=help", "application/json"),  # form as JSON
        (b'{"type": "event_callback"}', FORM),  # JSON as a form
        (b"command=%2Fdbquery&user_id=U0ANN", "text/plain"),  # wrong content type
        (b"", FORM),
        (b"nothing=here", FORM),
    ],
)
def test_what_cannot_be_parsed_is_a_400(bot: BotServer, body: bytes, content_type: str):
    response = post_raw(bot, body, content_type)
    assert response.status_code == 400
    assert "Traceback" not in response.text and len(response.text) < 200


@pytest.mark.parametrize(
    "changes",
    [
        {"team": 7},
        {"team": ["T0FAKE"]},
        {"team": {"id": 12}},
        {"actions": [{"value": "x"}]},
        {"actions": []},
        {"actions": "approve_request"},
        {"type": 5},
        {"user": {"id": 12345}},
        {"user": {"id": "U0MO\x00"}},
        {"user": {"id": "u0mo"}},
        {"user": "U0MO"},
        {"user": ...},
        {"channel": 3},
        {"authorizations": [1]},
        {"response_url": "javascript:alert(1)"},
        {"view": {"type": "workflow_step", "callback_id": "x"}},
    ],
)
def test_an_envelope_of_the_wrong_shape_is_a_400_before_bolt_sees_it(
    bot: BotServer, changes: dict[str, Any]
):
    response = bot.sender.payload(click_payload(bot, **changes))
    assert response.status_code == 400, response.text


def test_url_verification_is_answered_with_its_challenge(bot: BotServer):
    body = json.dumps({"type": "url_verification", "challenge": "c-123", "token": "t"})
    response = bot.sender.post(body, "application/json")
    assert response.status_code == 200
    assert "c-123" in response.text


def test_a_payload_nobody_listens_for_is_acknowledged(bot: BotServer):
    started = time.monotonic()
    view_closed = {"type": "view_closed", "user": {"id": "U0ANN"}, "view": {"id": "V1"}}
    assert bot.sender.payload(view_closed).status_code == 200
    click = click_payload(bot, actions=[{"action_id": "an_old_button", "value": "x"}])
    assert bot.sender.payload(click).status_code == 200
    other_event = {"type": "event_callback", "event": {"type": "team_join", "user": {}}}
    assert bot.sender.post(json.dumps(other_event), "application/json").status_code == 200
    assert time.monotonic() - started < 3


# --- what people typed gets an answer where they typed it -----------------------------------------


def submit(bot: BotServer, form: dict[str, Any]) -> dict[str, Any]:
    before = bot.core.requests.counts_by_status()
    response = bot.sender.submit_view("U0ANN", "submit_request", form)
    assert response.status_code == 200
    assert bot.core.requests.counts_by_status() == before  # nothing stored
    return response.json()


@pytest.mark.parametrize("block", ["query", "comments"])
def test_a_nul_byte_in_the_query_or_comments_is_a_field_error(bot: BotServer, block: str):
    form = query_form(bot.pg_target, "SELECT 1", "fine")
    form[block]["value"] += "\x00"
    answer = submit(bot, form)
    assert answer["response_action"] == "errors"
    assert "NUL" in answer["errors"][block]


@pytest.mark.parametrize(
    ("block", "state"),
    [
        ("query", {"type": "plain_text_input", "value": 42}),
        ("query", "SELECT 1"),
        ("target", {"type": "static_select", "selected_option": "pg-shop"}),
        ("target", {"type": "static_select", "selected_option": {"value": ["x"]}}),
        ("script", {"type": "file_input", "files": "a.sql"}),
        ("script", {"type": "file_input", "files": [{"name": 3}]}),
    ],
)
def test_wrong_typed_modal_state_is_a_field_error(bot: BotServer, block: str, state: Any):
    form: dict[str, Any] = query_form(bot.pg_target, "SELECT 1")
    if block == "script":
        form["submission_type"]["selected_option"]["value"] = "script"
    form[block] = state
    answer = submit(bot, form)
    assert answer["response_action"] == "errors"
    assert block in answer["errors"]


def test_a_nul_byte_in_a_rejection_reason_is_a_field_error(bot: BotServer):
    values = {"reason": {"type": "plain_text_input", "value": "no\x00"}}
    response = bot.sender.submit_view("U0MO", "reject_request", values, private_metadata="x")
    assert response.json()["errors"]["reason"].startswith("the reason holds a NUL")


def test_a_slash_command_without_a_trigger_id_is_answered_in_the_response(bot: BotServer):
    fields = {"command": "/dbquery", "user_id": "U0ANN", "text": "", "team_id": "T0FAKE"}
    response = bot.sender.form(fields)
    assert response.status_code == 200
    assert response.json()["response_type"] == "ephemeral"
    assert "run `/dbquery` again" in response.json()["text"]


def test_a_slash_command_without_a_response_url_is_answered_in_the_response(bot: BotServer):
    fields = {"command": "/dbquery", "user_id": "U0ANN", "text": "list", "trigger_id": "t"}
    response = bot.sender.form(fields)
    assert response.status_code == 200
    assert response.json()["response_type"] == "ephemeral"
    assert response.json()["text"]


def test_a_nul_byte_in_a_slash_command_is_answered_privately(bot: BotServer):
    response, _ = bot.sender.command("U0ANN", "status \x00abc")
    assert response.status_code == 200
    assert "NUL" in response.json()["text"]


# --- whatever passes the intake, Bolt can read ---------------------------------------------------

KEYS = (
    "type", "user", "id", "team", "team_id", "enterprise", "enterprise_id", "actions",
    "action_id", "block_id", "value", "view", "callback_id", "state", "values", "blocks",
    "private_metadata", "event", "channel", "authorizations", "response_url", "trigger_id",
    "workflow_step", "user_team", "tab",
)  # fmt: skip
WORDS = ("workflow_step", "modal", "home", "U0MO", "T0FAKE", "block_actions", "approve_request")
JUNK = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=4) | st.sampled_from(WORDS),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS), inner),
    max_leaves=8,
)


def good_or_junk(good: Any) -> st.SearchStrategy:
    """Usually what Slack sends, sometimes anything at all."""
    return st.one_of(st.just(good), st.just(good), JUNK)


def shaped(required: dict[str, Any], **optional: Any) -> st.SearchStrategy:
    """An object shaped as Slack sends it, each field usually right, sometimes anything."""
    return good_or_junk_strategy(
        st.fixed_dictionaries(
            {key: good_or_junk(value) for key, value in required.items()},
            optional={key: good_or_junk(value) for key, value in optional.items()},
        )
    )


def good_or_junk_strategy(good: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(good, good, JUNK)


TEAM = {"id": "T0FAKE", "domain": "fake"}
COMMON = {
    "team": shaped(TEAM, enterprise_id="E0ORG"),
    "enterprise": good_or_junk(None),
    "channel": shaped({"id": "DU0MO"}),
    "authorizations": good_or_junk_strategy(
        st.lists(shaped({"team_id": "T0FAKE"}, enterprise_id="E0", user_id="U0B"), max_size=2)
    ),
    "response_url": good_or_junk("https://hooks.slack.com/actions/1"),
    "trigger_id": good_or_junk("trigger-1"),
    "container": shaped({"type": "message"}),
    "is_ext_shared_channel": good_or_junk(False),
    "message": shaped({"ts": "1.1"}),
}
USER = shaped({"id": "U0MO"}, team_id="T0FAKE")
VIEW = {"id": "V1", "type": "modal", "callback_id": "submit_request"}
INTERACTIONS = st.one_of(
    st.fixed_dictionaries(
        {
            "type": good_or_junk("block_actions"),
            "user": USER,
            "actions": good_or_junk_strategy(
                st.lists(
                    shaped({"action_id": "approve_request"}, value="x", block_id="b"),
                    min_size=1,
                    max_size=2,
                )
            ),
        },
        optional={**COMMON, "view": shaped({"id": "V1", "type": "home"})},
    ),
    st.fixed_dictionaries(
        {
            "type": good_or_junk("view_submission"),
            "user": USER,
            "view": shaped(VIEW, state={"values": {}}, private_metadata="", blocks=[]),
        },
        optional=COMMON,
    ),
    st.fixed_dictionaries(
        {"type": good_or_junk("block_suggestion"), "user": USER, "action_id": st.just("target")},
        optional={**COMMON, "view": shaped(VIEW)},
    ),
)
EVENTS = st.fixed_dictionaries(
    {
        "type": good_or_junk("event_callback"),
        "event": shaped({"type": "app_home_opened", "user": "U0MO"}, tab="home"),
    },
    optional={
        "team_id": good_or_junk("T0FAKE"),
        "authorizations": COMMON["authorizations"],
        "is_ext_shared_channel": COMMON["is_ext_shared_channel"],
        "enterprise": COMMON["enterprise"],
    },
)


def test_whatever_the_intake_admits_bolt_can_read():
    seen: Counter[str] = Counter()

    @settings(max_examples=1_000, derandomize=True, database=None, deadline=None)
    @given(payload=st.one_of(INTERACTIONS, EVENTS))
    def admitted_payloads_parse_in_bolt(payload: dict[str, Any]) -> None:
        if payload.get("type") == "event_callback" or "event" in payload:
            raw, content_type = json.dumps(payload), "application/json"
        else:
            raw, content_type = urlencode({"payload": json.dumps(payload)}), FORM
        try:
            verdict = parse_envelope(content_type, raw.encode())
        except Malformed:
            seen["refused"] += 1
            return
        if isinstance(verdict, Answer):
            assert verdict.status == 200
            seen["ignored"] += 1
            return
        seen["dispatched"] += 1
        # What Bolt computes for every request (its context), and for every listener and
        # middleware it runs (build_required_kwargs).
        body = bolt_request(verdict, {"content-type": content_type}).body
        for extract in (
            to_options, to_shortcut, to_action, to_view, to_command, to_event, to_message, to_step
        ):  # fmt: skip
            extract(body)

    admitted_payloads_parse_in_bolt()
    # A generator that only ever produced refusals would make this property vacuous. The share
    # of admitted payloads moves with the listeners' ids the strategies draw from (about 5 %).
    assert seen["dispatched"] >= 25 and seen["refused"] >= 50, seen
