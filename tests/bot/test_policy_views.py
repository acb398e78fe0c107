"""Block Kit of approval policies: risk first, steps, schedule, policy approvals, Run again, the
filled re-run form; every payload within Slack's limits."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime

from bot.views.approval import approval_message, decided_message
from bot.views.commands import pending_message
from bot.views.home import home_view
from bot.views.request_card import request_card
from bot.views.submit import rerun_refusal, submit_modal
from core.approvals import PolicyState, StepRecord
from tests.bot.test_views import assert_within_slack_limits
from tests.bot.view_fixtures import decided, make_catalogue, make_request, make_user

AT = datetime(2031, 1, 15, 12, 0, tzinfo=UTC)
MAYA = uuid.uuid4()


def state(**changes) -> PolicyState:
    base = PolicyState(
        risk_level="high",
        risk_reasons=("changes the schema",),
        estimate_summary="no estimate for this kind",
        approvals_required=2,
        second_approval_policy="schema-changes",
        second_approval_group="admins",
        run_after=None,
        not_before=None,
        expires_at=None,
        rerun_of=None,
        steps=(),
    )
    return replace(base, **changes)


def texts(payload: dict) -> str:
    return json.dumps(payload, ensure_ascii=False)


def test_the_dm_opens_with_the_risk_and_the_estimate():
    policy = state(
        risk_level="medium",
        estimate_summary="~12,400 rows affected · full scan of `pg_orders` (1.2M rows)",
        approvals_required=1,
    )
    message = approval_message(make_request(), None, policy)

    assert_within_slack_limits(message)
    header, risk = message["blocks"][:2]
    assert header["type"] == "header"
    assert risk["block_id"] == "risk"
    assert risk["text"]["text"].startswith(":large_yellow_circle: *Risk: medium* · ~12,400 rows")
    assert "`pg_orders`" in risk["text"]["text"]


def test_step_one_of_two_names_who_approved_and_who_is_asked_next():
    policy = state(steps=(StepRecord(1, MAYA, "maya@example.com", AT, None),))
    message = approval_message(make_request(), None, policy)

    shown = texts(message)
    assert "*Step 1 of 2* approved by maya@example.com" in shown
    assert "*step 2 of 2* needs an admin (policy schema-changes)" in shown
    assert any(b["type"] == "actions" for b in message["blocks"])
    assert "needs two approvals" in texts(approval_message(make_request(), None, state()))


def test_an_approval_by_policy_is_said_so_on_the_card_and_in_the_dm():
    request = make_request(status="approved", approver_email="policy:small-reads", approved_at=AT)
    policy = state(
        risk_level="low",
        approvals_required=1,
        steps=(StepRecord(1, None, "policy:small-reads", AT, "small-reads"),),
    )

    card = request_card(request, policy)
    dm = decided_message(request, None, policy)

    for payload in (card, dm):
        assert_within_slack_limits(payload)
        assert "Approved automatically by policy small-reads" in texts(payload)
        assert "someone" not in texts(payload)
    assert "approved automatically by policy small-reads" in dm["text"]


def test_a_held_request_says_when_it_runs_and_a_finished_one_offers_run_again():
    held = make_request(status="approved", approved_at=AT)
    card = request_card(held, state(approvals_required=1, not_before=AT))
    assert "Scheduled for" in texts(card)
    assert "runs in a moment" not in texts(card)
    assert "rerun_request" not in texts(card)

    done = decided(make_request(), "completed")
    card = request_card(done, state(approvals_required=1))
    assert_within_slack_limits(card)
    buttons = [e for b in card["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert [(b["action_id"], b["value"]) for b in buttons] == [("rerun_request", str(done.uuid))]


def test_a_request_stored_before_policies_shows_no_policy_blocks():
    assert texts(approval_message(make_request(), None, None)).count("Risk") == 0


def test_a_long_estimate_is_cut_visibly():
    policy = state(estimate_summary="x" * 5_000, risk_reasons=("y" * 5_000,))
    message = approval_message(make_request(), None, policy)

    assert_within_slack_limits(message)
    assert "…" in message["blocks"][1]["text"]["text"]


def test_the_rerun_form_is_filled_from_the_request():
    request = make_request(instance_id="pg-0", database_name="db0", comments="again")
    modal = submit_modal(make_catalogue(), rerun=request)

    assert_within_slack_limits(modal, "modal")
    assert modal["private_metadata"] == str(request.uuid)
    blocks = {b.get("block_id"): b for b in modal["blocks"]}
    assert blocks["query"]["element"]["initial_value"] == request.query_content
    assert blocks["comments"]["element"]["initial_value"] == "again"
    assert blocks["target"]["element"]["initial_option"]["value"] == "pg-0/db0"
    assert rerun_refusal(request) is None
    assert "attach its script again" in rerun_refusal(
        make_request(submission_type="script", query_content=None, script_content="x" * 4_000)
    )


def test_lists_of_waiting_requests_show_the_risk_first():
    request = make_request()
    policies = {request.id: state(risk_level="critical", estimate_summary="~2M rows affected")}

    listed = pending_message([request], None, policies)
    home = home_view(make_user(role="manager"), [], [request], None, policies)

    for payload, surface in ((listed, "message"), (home, "home")):
        assert_within_slack_limits(payload, surface)
        summary = next(b for b in payload["blocks"] if "asks to run" in texts(b))
        assert summary["text"]["text"].startswith(":red_circle: *Risk: critical* · ~2M rows")
    assert "Risk" not in texts(pending_message([request], None))
