"""Approval policies as people meet them in Slack: risk and estimate first in the approval DM, a
small read approved by policy, a schema change that needs two people (clicked concurrently),
a request that expires, a window and a "Run after" that hold a write, and Run again.

A real server on loopback, the fake Slack Web API, signed requests, a real PostgreSQL target
and a SQLite portal database; the request service's clock is moved by the tests.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.messages import MessageRefs
from core.lifecycle import Status
from core.records import RequestRecord
from tests.bot.conftest import (
    AUDIT_CHANNEL,
    BotServer,
    query_form,
    start_server,
    wait_until,
)
from tests.bot.fakeslack import Call, FakeSlack

APPROVE = "approve_request"
RERUN = "rerun_request"
POLICIES = {
    "auto_approve": {"name": "small-reads", "kinds": ["read"], "max_estimated_rows": 100},
    "second_approval": {"name": "schema-changes", "kinds": ["ddl"], "group": "admins"},
    "expire_after_h": 72,
}
WINDOW = "Sat 22:00–Sun 04:00 UTC"
WEDNESDAY_NOON = datetime(2031, 1, 15, 12, 0, tzinfo=UTC)
SATURDAY_WINDOW = datetime(2031, 1, 18, 22, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def bot(
    tmp_path_factory: pytest.TempPathFactory,
    fake_slack: FakeSlack,
    target_database: str,
    target_secret: None,
    mongo_target: tuple[str, int],
) -> Iterator[BotServer]:
    workdir = tmp_path_factory.mktemp("policybot")
    server = start_server(
        f"sqlite:///{workdir / 'portal.sqlite3'}",
        workdir,
        fake_slack,
        target_database,
        mongo_target,
        extra_instances=[
            {"id": "pg-policies", "name": "Shop with policies", "policies": POLICIES},
            {"id": "pg-window", "name": "Shop in its window", "policies": {"window": WINDOW}},
        ],
    )
    try:
        yield server
    finally:
        server.stop()


# --- what the stories share --------------------------------------------------------------------


def text_of(call: Call) -> str:
    return json.dumps({k: call.args.get(k) for k in ("text", "blocks", "view")}, ensure_ascii=False)


def set_time(bot: BotServer, moment: datetime) -> None:
    bot.clock.offset = moment - datetime.now(UTC)


def submit(
    bot: BotServer,
    query: str,
    *,
    target: str | None = None,
    user: str = "U0ANN",
    run_after: datetime | None = None,
    private_metadata: str = "",
) -> RequestRecord:
    before = {r.id for r in bot.core.requests.recent(limit=1000)}
    values: dict[str, Any] = query_form(target or f"pg-policies/{bot.target_db}", query)
    if run_after is not None:
        values["run_after"] = {
            "type": "datetimepicker",
            "selected_date_time": int(run_after.timestamp()),
        }
    response = bot.sender.submit_view(
        user, "submit_request", values, private_metadata=private_metadata
    )
    assert response.status_code == 200
    assert response.text == "", response.text
    (new,) = [r for r in bot.core.requests.recent(limit=1000) if r.id not in before]
    return new


def wait_status(bot: BotServer, request: RequestRecord, *statuses: str) -> RequestRecord:
    return wait_until(
        lambda: (r := bot.core.requests.get(request.uuid)).status in statuses and r,
        what=f"request {request.short_id} to become {'/'.join(statuses)}",
    )


def posts_to(bot: BotServer, channel: str, request: RequestRecord) -> list[Call]:
    return bot.fake.calls_to(
        "chat.postMessage",
        lambda c: c.args.get("channel") == channel and request.short_id in text_of(c),
    )


def latest(bot: BotServer, channel: str, ts: str) -> dict[str, Any]:
    """What a posted message shows now: its last update, or the post itself."""
    updates = bot.fake.calls_to(
        "chat.update", lambda c: c.args.get("channel") == channel and c.args.get("ts") == ts
    )
    if updates:
        return updates[-1].args
    (post,) = [
        c for c in bot.fake.calls if c.method == "chat.postMessage" and c.answer.get("ts") == ts
    ]
    return post.args


def card_now(bot: BotServer, request: RequestRecord) -> str:
    card = wait_until(
        lambda: MessageRefs(bot.core.sessions).card(request.id), what="the request card"
    )
    return json.dumps(latest(bot, card.channel_id, card.ts), ensure_ascii=False)


def dm_of(bot: BotServer, request: RequestRecord, slack_id: str):
    return wait_until(
        lambda: next(
            (
                r
                for r in MessageRefs(bot.core.sessions).approvals(request.id)
                if r.slack_user_id == slack_id
            ),
            None,
        ),
        what=f"{slack_id}'s approval DM",
    )


def click(bot: BotServer, user: str, action: str, request: RequestRecord) -> str | None:
    response, response_url = bot.sender.click(user, action, str(request.uuid))
    assert response.status_code == 200
    return response_url


def private_answer(bot: BotServer, response_url: str) -> str:
    (answer,) = bot.fake.wait_for("response_url", lambda c: response_url.endswith(c.path))
    return answer.args.get("text") or ""


def answers_to(bot: BotServer, urls: list[str | None]) -> list[str]:
    return [
        c.args.get("text") or ""
        for c in bot.fake.calls_to("response_url")
        if any(url and url.endswith(c.path) for url in urls)
    ]


def audit_lines(bot: BotServer, request: RequestRecord) -> list[str]:
    return [
        c.args["text"]
        for c in bot.fake.calls_to(
            "chat.postMessage", lambda c: c.args.get("channel") == AUDIT_CHANNEL
        )
        if request.short_id in c.args.get("text", "")
    ]


@pytest.fixture(autouse=True)
def wednesday(bot: BotServer) -> None:
    set_time(bot, WEDNESDAY_NOON)


# --- the stories --------------------------------------------------------------------------------


def test_a_small_read_runs_with_no_manager_and_is_recorded_as_the_policys(bot):
    request = submit(bot, "SELECT id, customer FROM orders WHERE id = 1")

    done = wait_status(bot, request, Status.COMPLETED)
    assert done.approver is None and done.approver_email == "policy:small-reads"
    assert done.approved_at is not None
    card = wait_until(
        lambda: (
            "approved automatically by policy" in card_now(bot, request).lower()
            and card_now(bot, request)
        ),
        what="the card to name the policy",
    )
    assert "small-reads" in card and "Risk: low" in card
    # Nobody was asked.
    assert MessageRefs(bot.core.sessions).approvals(request.id) == []
    assert posts_to(bot, "DU0MO", request) == [] and posts_to(bot, "DU0PAT", request) == []
    wait_until(
        lambda: any(
            "approved automatically by policy small-reads" in a for a in audit_lines(bot, request)
        ),
        what="the audit line",
    )


def test_the_approval_dm_opens_with_risk_and_estimate(bot):
    request = submit(bot, "UPDATE orders SET total = total WHERE id > 0")

    ref = dm_of(bot, request, "U0MO")
    blocks = latest(bot, ref.channel_id, ref.ts)["blocks"]
    assert blocks[0]["type"] == "header"
    risk = blocks[1]
    assert risk["block_id"] == "risk"
    assert "*Risk: medium*" in risk["text"]["text"]
    assert "rows affected" in risk["text"]["text"]
    assert any(b.get("type") == "actions" for b in blocks)  # still decidable

    click(bot, "U0MO", APPROVE, request)
    assert wait_status(bot, request, Status.COMPLETED).approver_email == "mo@example.com"


def test_a_schema_change_needs_two_people_and_concurrent_second_clicks_run_it_once(bot):
    request = submit(bot, "CREATE TABLE IF NOT EXISTS policy_story_ddl (id int)")
    first_dm = dm_of(bot, request, "U0MO")
    assert "Step 1 of 2" in json.dumps(latest(bot, first_dm.channel_id, first_dm.ts)["blocks"])

    click(bot, "U0MO", APPROVE, request)
    admin_dm = dm_of(bot, request, "U0ADA")  # the second approver is asked now
    shown = json.dumps(latest(bot, admin_dm.channel_id, admin_dm.ts)["blocks"])
    assert "Step 1 of 2* approved by mo@example.com" in shown
    assert "step 2 of 2* needs an admin" in shown
    assert bot.core.requests.get(request.uuid).status == Status.PENDING
    wait_until(
        lambda: any(
            "step 1 of 2 approved by mo@example.com" in a for a in audit_lines(bot, request)
        ),
        what="the step's audit line",
    )

    again = click(bot, "U0MO", APPROVE, request)
    assert "You approved step 1 already" in private_answer(bot, again)
    other = click(bot, "U0PAT", APPROVE, request)
    assert "needs an admin" in private_answer(bot, other)
    assert bot.core.requests.get(request.uuid).status == Status.PENDING

    start = threading.Barrier(2)
    urls: list[str | None] = []

    def admin_click() -> None:
        start.wait()
        urls.append(click(bot, "U0ADA", APPROVE, request))

    threads = [threading.Thread(target=admin_click) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    done = wait_status(bot, request, Status.COMPLETED)
    assert done.approver.email == "ada@example.com"
    # The slower click is told who got there first.
    wait_until(
        lambda: any("Already approved by Ada Admin" in a for a in answers_to(bot, urls)),
        what="the slower click's answer",
    )
    assert [s.approver_email for s in bot.core.requests.policy_state(done).steps] == [
        "mo@example.com",
        "ada@example.com",
    ]


def test_a_request_nobody_decides_expires_and_its_dms_lose_their_buttons(bot):
    request = submit(bot, "DELETE FROM applied WHERE id < 0")
    ref = dm_of(bot, request, "U0MO")

    set_time(bot, WEDNESDAY_NOON + timedelta(hours=72, minutes=1))
    bot.runtime.worker.expire_stale()

    expired = wait_status(bot, request, Status.REJECTED)
    assert expired.rejection_reason == "expired: no decision in 72 h"
    dm = wait_until(
        lambda: (m := latest(bot, ref.channel_id, ref.ts)) and "Rejected" in json.dumps(m) and m,
        what="the DM to show the expiry",
    )
    assert not any(b.get("type") == "actions" for b in dm["blocks"])
    assert "expired: no decision in 72 h" in json.dumps(dm["blocks"])
    card = MessageRefs(bot.core.sessions).card(request.id)
    reply = bot.fake.wait_for(
        "chat.postMessage",
        lambda c: c.args.get("thread_ts") == card.ts and "expired" in text_of(c),
    )
    assert reply


def test_a_window_holds_an_approved_write_until_it_opens(bot):
    request = submit(
        bot,
        "INSERT INTO applied (note) VALUES ('in the window')",
        target=f"pg-window/{bot.target_db}",
    )
    click(bot, "U0MO", APPROVE, request)
    wait_status(bot, request, Status.APPROVED)
    assert bot.core.requests.policy_state(request).not_before == SATURDAY_WINDOW
    wait_until(lambda: "Scheduled for" in card_now(bot, request), what="the card's schedule")

    assert bot.runtime.worker.dispatch() == 0
    assert bot.core.requests.get(request.uuid).status == Status.APPROVED

    set_time(bot, SATURDAY_WINDOW + timedelta(minutes=1))
    bot.runtime.worker.dispatch()
    wait_status(bot, request, Status.COMPLETED)


def test_run_after_from_the_modal_is_shown_and_honoured(bot):
    later = WEDNESDAY_NOON + timedelta(hours=2)
    request = submit(bot, "SELECT * FROM events", run_after=later)

    ref = dm_of(bot, request, "U0MO")
    assert "Run after" in json.dumps(latest(bot, ref.channel_id, ref.ts)["blocks"])
    click(bot, "U0MO", APPROVE, request)
    wait_status(bot, request, Status.APPROVED)
    assert bot.runtime.worker.dispatch() == 0

    set_time(bot, later + timedelta(seconds=1))
    bot.runtime.worker.dispatch()
    wait_status(bot, request, Status.COMPLETED)


def test_a_run_after_that_is_not_a_time_is_refused_on_its_field(bot):
    values = query_form(f"pg-policies/{bot.target_db}", "SELECT 1")
    values["run_after"] = {"type": "datetimepicker", "selected_date_time": "tomorrow"}

    response = bot.sender.submit_view("U0ANN", "submit_request", values)

    assert response.json() == {
        "response_action": "errors",
        "errors": {"run_after": "pick a date and a time"},
    }


def test_run_again_opens_the_filled_form_and_links_the_new_request(bot):
    original = submit(bot, "SELECT id FROM orders WHERE id = 2")
    wait_status(bot, original, Status.COMPLETED)
    wait_until(lambda: "rerun_request" in card_now(bot, original), what="Run again on the card")

    click(bot, "U0ANN", RERUN, original)
    (opened,) = bot.fake.wait_for(
        "views.open", lambda c: str(original.uuid) in json.dumps(c.args.get("view"))
    )
    view = opened.args["view"]
    if isinstance(view, str):
        view = json.loads(view)
    assert view["private_metadata"] == str(original.uuid)
    query = next(b for b in view["blocks"] if b.get("block_id") == "query")
    assert query["element"]["initial_value"] == "SELECT id FROM orders WHERE id = 2"

    again = submit(bot, "SELECT id FROM orders WHERE id = 2", private_metadata=str(original.uuid))
    assert again.id != original.id
    assert bot.core.requests.policy_state(again).rerun_of == original.id
    wait_until(
        lambda: f"Runs request `{original.short_id}` again" in card_now(bot, again),
        what="the new card to name the original",
    )

    bot.sender.command("U0ANN", f"rerun {original.short_id}")
    bot.fake.wait_for(
        "views.open",
        lambda c: str(original.uuid) in json.dumps(c.args.get("view")),
        count=2,
    )
    # Someone who may not see the request cannot run it again.
    outsider = click(bot, "U0OLGA", RERUN, original)
    assert "can't run request" in private_answer(bot, outsider)


def test_a_mongodb_dm_opens_with_its_risk_and_estimate_too(bot):
    request = submit(bot, "db.clicks.find({page: '/p/1'})", target="mongo-events/events")

    ref = dm_of(bot, request, "U0MO")
    risk = wait_until(
        lambda: (
            (b := latest(bot, ref.channel_id, ref.ts)["blocks"][1])
            and "*Risk: " in b["text"]["text"]
            and b
        ),
        what="the risk line",
    )
    assert risk["block_id"] == "risk"
    # nx-27017 answers find's explain with a collection scan: the whole collection at most.
    assert "up to 3,000 documents returned" in risk["text"]["text"]
