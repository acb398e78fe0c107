"""The product as people meet it: submit in Slack, approve in a DM, read the result in a thread.

A real server (the app `serve` runs) on loopback, a fake Slack Web API, signed requests, a real
PostgreSQL target and a SQLite portal database.
"""

from __future__ import annotations

import csv
import io
import json
import uuid

import psycopg
import pytest
from sqlalchemy import update

from bot.messages import MessageRefs
from bot.notifier import SlackNotifier
from core.lifecycle import Status
from core.records import RequestRecord
from db import repository as repo
from db.models import OutcomeDelivery, User
from tests.bot.conftest import (
    AUDIT_CHANNEL,
    BIG_ROWS,
    BotServer,
    query_form,
    script_form,
    wait_until,
)
from tests.bot.fakeslack import Call
from tests.conftest import pg_url_for

APPROVE = "approve_request"
REJECT = "reject_request"


# --- helpers ------------------------------------------------------------------------------------


def text_of(call: Call) -> str:
    """Everything a person would read in a message or view, as one string."""
    return json.dumps({k: call.args.get(k) for k in ("text", "blocks", "view")}, ensure_ascii=False)


def submit_query(bot: BotServer, query: str, *, user: str = "U0ANN", **form) -> RequestRecord:
    before = {r.id for r in bot.core.requests.recent(limit=1000)}
    response = bot.sender.submit_view(
        user,
        "submit_request",
        query_form(form.get("target", bot.pg_target), query, form.get("comments")),
    )
    assert response.status_code == 200
    assert response.text == "", f"the modal should close, got {response.text}"
    new = [r for r in bot.core.requests.recent(limit=1000) if r.id not in before]
    assert len(new) == 1
    return new[0]


def card_of(bot: BotServer, request: RequestRecord):
    refs = MessageRefs(bot.core.sessions)
    return wait_until(lambda: refs.card(request.id), what="the request card reference")


def approval_dms(bot: BotServer, request: RequestRecord, count: int):
    refs = MessageRefs(bot.core.sessions)
    return wait_until(
        lambda: (found := refs.approvals(request.id)) and len(found) >= count and found,
        what=f"{count} approval DM references",
    )


def status_of(bot: BotServer, request: RequestRecord) -> str:
    return bot.core.requests.get(request.uuid).status


def wait_status(bot: BotServer, request: RequestRecord, *statuses: str) -> RequestRecord:
    return wait_until(
        lambda: (r := bot.core.requests.get(request.uuid)).status in statuses and r,
        what=f"request {request.short_id} to become {'/'.join(statuses)}",
    )


def thread_replies(bot: BotServer, request: RequestRecord, count: int = 1) -> list[Call]:
    card = card_of(bot, request)
    return bot.fake.wait_for(
        "chat.postMessage",
        lambda c: c.args.get("thread_ts") == card.ts and c.args.get("channel") == card.channel_id,
        count=count,
    )


def approve(bot: BotServer, request: RequestRecord, user: str = "U0MO") -> RequestRecord:
    response, _ = bot.sender.click(user, APPROVE, str(request.uuid))
    assert response.status_code == 200
    return wait_status(bot, request, Status.COMPLETED, Status.FAILED)


def answer_to(bot: BotServer, response_url: str) -> Call:
    """The (first) message posted to a response_url."""
    return bot.fake.wait_for("response_url", lambda c: response_url.endswith(c.path))[0]


# --- submit -> DMs -> approve -> threaded result --------------------------------------------------


def test_submit_posts_the_card_and_one_approval_dm_per_manager(bot: BotServer):
    request = submit_query(
        bot, "SELECT id, customer FROM orders ORDER BY id", comments="ticket PAY-42"
    )
    assert request.status == Status.PENDING
    assert request.comments == "ticket PAY-42"

    card = card_of(bot, request)
    assert card.channel_id == "DU0ANN"
    [card_post] = bot.fake.wait_for(
        "chat.postMessage",
        lambda c: c.args.get("channel") == "DU0ANN" and request.short_id in text_of(c),
    )
    assert "SELECT id, customer FROM orders" in text_of(card_post)

    dms = approval_dms(bot, request, 2)
    assert sorted(d.slack_user_id for d in dms) == ["U0MO", "U0PAT"]
    for dm in dms:
        [post] = bot.fake.wait_for(
            "chat.postMessage",
            lambda c, dm=dm: (
                c.args.get("channel") == dm.channel_id and request.short_id in text_of(c)
            ),
        )
        buttons = [
            element
            for block in post.args["blocks"]
            if block["type"] == "actions"
            for element in block["elements"]
        ]
        assert {(b["action_id"], b["value"]) for b in buttons} == {
            (APPROVE, str(request.uuid)),
            (REJECT, str(request.uuid)),
        }
        assert "ticket PAY-42" in text_of(post)
    # Another pod's manager and the admin are not asked while the pod has managers.
    assert not bot.fake.calls_to(
        "chat.postMessage",
        lambda c: c.args.get("channel") in ("DU0OLGA", "DU0ADA") and request.short_id in text_of(c),
    )
    bot.fake.wait_for(
        "chat.postMessage",
        lambda c: (
            c.args.get("channel") == AUDIT_CHANNEL
            and f"`{request.short_id}` submitted" in c.args.get("text", "")
        ),
    )


def test_approval_runs_the_query_and_replies_under_the_card(bot: BotServer):
    request = submit_query(bot, "SELECT id, customer, total FROM orders ORDER BY id")
    dms = approval_dms(bot, request, 2)

    done = approve(bot, request, "U0MO")
    assert done.status == Status.COMPLETED
    assert done.approver is not None and done.approver.email == "mo@example.com"

    [reply] = thread_replies(bot, request)
    shown = text_of(reply)
    for customer in ("acme", "globex", "initech"):
        assert customer in shown
    # Every approval DM loses its buttons and says who approved.
    for dm in dms:
        [update] = bot.fake.wait_for(
            "chat.update",
            lambda c, dm=dm: c.args.get("channel") == dm.channel_id and c.args.get("ts") == dm.ts,
        )
        assert not any(b["type"] == "actions" for b in update.args["blocks"])
        assert "Approved by" in text_of(update)
    card = card_of(bot, request)
    bot.fake.wait_for(
        "chat.update",
        lambda c: c.args.get("ts") == card.ts and "Completed" in text_of(c),
    )
    # The audit channel gets one line per transition.
    for event in ("submitted", "approved by Mo Manager", "executing", "completed"):
        bot.fake.wait_for(
            "chat.postMessage",
            lambda c, event=event: (
                c.args.get("channel") == AUDIT_CHANNEL
                and c.args.get("text", "").startswith(f"`{request.short_id}` {event}")
            ),
        )


def test_a_second_click_changes_nothing_and_says_who_decided(bot: BotServer):
    request = submit_query(bot, "SELECT count(*) FROM orders")
    approve(bot, request, "U0MO")

    response, response_url = bot.sender.click("U0PAT", APPROVE, str(request.uuid))
    assert response.status_code == 200
    answer = answer_to(bot, response_url)
    assert "Already approved by Mo Manager" in answer.args["text"]
    assert answer.args.get("response_type") == "ephemeral"
    assert status_of(bot, request) == Status.COMPLETED
    assert len(thread_replies(bot, request)) == 1


@pytest.mark.parametrize(
    ("requester", "clicker", "why"),
    [
        ("U0ANN", "U0DEV2", "developers cannot approve or reject requests"),
        ("U0ANN", "U0OLGA", "only a manager of pod 'payments' or an admin may decide it"),
        ("U0MO", "U0MO", "nobody may decide their own request"),
    ],
)
def test_someone_who_may_not_decide_is_told_why_and_nothing_changes(
    bot: BotServer, requester: str, clicker: str, why: str
):
    request = submit_query(bot, "SELECT 1", user=requester)
    for action in (APPROVE, REJECT):
        response, response_url = bot.sender.click(clicker, action, str(request.uuid))
        assert response.status_code == 200
        assert why in answer_to(bot, response_url).args["text"]
    assert status_of(bot, request) == Status.PENDING
    assert not bot.fake.calls_to(
        "views.open", lambda c: c.args["view"].get("private_metadata") == str(request.uuid)
    )


def test_reject_asks_for_a_reason_and_posts_it_under_the_card(bot: BotServer):
    request = submit_query(bot, "DELETE FROM orders WHERE id = 3")
    dms = approval_dms(bot, request, 2)

    response, _ = bot.sender.click("U0PAT", REJECT, str(request.uuid))
    assert response.status_code == 200
    [opened] = bot.fake.wait_for(
        "views.open", lambda c: c.args["view"].get("private_metadata") == str(request.uuid)
    )
    modal = opened.args["view"]
    assert modal["callback_id"] == "reject_request"
    assert any(b.get("block_id") == "reason" for b in modal["blocks"])

    # The reason is required.
    empty = {"reason": {"type": "plain_text_input", "value": "  "}}
    response = bot.sender.submit_view(
        "U0PAT", "reject_request", empty, private_metadata=str(request.uuid)
    )
    assert response.json()["response_action"] == "errors"
    assert "reason" in response.json()["errors"]
    assert status_of(bot, request) == Status.PENDING

    reason = {"reason": {"type": "plain_text_input", "value": "Use the reporting replica"}}
    response = bot.sender.submit_view(
        "U0PAT", "reject_request", reason, private_metadata=str(request.uuid)
    )
    assert response.status_code == 200 and response.text == ""
    rejected = wait_status(bot, request, Status.REJECTED)
    assert rejected.rejection_reason == "Use the reporting replica"

    [reply] = thread_replies(bot, request)
    assert "Use the reporting replica" in text_of(reply)
    for dm in dms:
        [update] = bot.fake.wait_for(
            "chat.update", lambda c, dm=dm: c.args.get("ts") == dm.ts and "Rejected" in text_of(c)
        )
        assert not any(b["type"] == "actions" for b in update.args["blocks"])
    # Nothing ran: the row the DELETE named is still there.
    with psycopg.connect(pg_url_for(bot.target_db)) as conn:
        assert conn.execute("SELECT count(*) FROM orders WHERE id = 3").fetchone()[0] == 1
    # A late approval of a rejected request changes nothing.
    response, response_url = bot.sender.click("U0MO", APPROVE, str(request.uuid))
    assert "Already rejected by Pat Manager" in answer_to(bot, response_url).args["text"]
    assert status_of(bot, request) == Status.REJECTED


def test_a_database_error_is_posted_under_the_card(bot: BotServer):
    request = submit_query(bot, "SELECT * FROM no_such_table")
    failed = approve(bot, request)
    assert failed.status == Status.FAILED
    assert 'relation "no_such_table" does not exist' in (failed.execution_error or "")
    [reply] = thread_replies(bot, request)
    assert 'relation \\"no_such_table\\" does not exist' in text_of(reply)


def test_a_large_result_is_uploaded_as_csv_into_the_thread(bot: BotServer):
    request = submit_query(bot, "SELECT id, kind, note FROM events ORDER BY id")
    done = approve(bot, request)
    assert done.status == Status.COMPLETED
    card = card_of(bot, request)

    [completed] = bot.fake.wait_for(
        "files.completeUploadExternal", lambda c: c.args.get("thread_ts") == card.ts
    )
    assert completed.args["channel_id"] == card.channel_id
    file_id = json.loads(completed.args["files"])[0]["id"]
    upload = bot.fake.uploads[file_id]
    assert upload.filename.endswith(".csv")
    rows = list(csv.reader(io.StringIO(upload.data.decode("utf-8"))))
    assert rows[0] == ["id", "kind", "note"]
    assert len(rows) == BIG_ROWS + 1
    assert rows[1] == ["1", "kind-1", "x" * 20]
    assert rows[-1][0] == str(BIG_ROWS)
    # The message in the thread keeps a preview and says the rest is attached.
    [reply] = thread_replies(bot, request)
    assert f"{BIG_ROWS:,}" in text_of(reply)


def test_a_script_is_downloaded_with_the_bot_token_and_runs_as_one_transaction(bot: BotServer):
    note = f"script-{uuid.uuid4().hex[:8]}"
    script = (
        "-- raise one order, record that we did\n"
        "UPDATE orders SET total = total + 1 WHERE id = 1;\n"
        f"INSERT INTO applied (note) VALUES ('{note}');\n"
    )
    attached = bot.fake.add_file("fix.sql", script.encode(), "sql")
    before = len(bot.core.requests.recent(limit=1000))
    response = bot.sender.submit_view(
        "U0ANN", "submit_request", script_form(bot.pg_target, [attached])
    )
    assert response.status_code == 200 and response.text == ""
    [download] = bot.fake.calls_to("download", lambda c: c.args["file"] == attached["id"])
    assert download.headers["authorization"] == "Bearer xoxb-fake-token"

    request = bot.core.requests.recent(limit=1)[0]
    assert len(bot.core.requests.recent(limit=1000)) == before + 1
    assert request.submission_type == "script"
    assert request.script_filename == "fix.sql"
    assert request.script_content == script

    [dm_post, *_] = bot.fake.wait_for(
        "chat.postMessage",
        lambda c: c.args.get("channel") == "DU0MO" and request.short_id in text_of(c),
    )
    assert "fix.sql" in text_of(dm_post)
    done = approve(bot, request)
    assert done.status == Status.COMPLETED, done.execution_error
    [reply] = thread_replies(bot, request)
    assert "UPDATE" in text_of(reply) and "INSERT" in text_of(reply)
    with psycopg.connect(pg_url_for(bot.target_db)) as conn:
        assert (
            conn.execute("SELECT count(*) FROM applied WHERE note = %s", (note,)).fetchone()[0] == 1
        )


def test_a_failed_result_post_is_retried_by_the_worker(bot: BotServer):
    request = submit_query(bot, "SELECT customer FROM orders WHERE id = 2")
    card = card_of(bot, request)
    bot.fake.fail(
        "chat.postMessage", "internal_error", where=lambda args: args.get("thread_ts") == card.ts
    )
    done = approve(bot, request)
    assert done.status == Status.COMPLETED
    [failed_post] = thread_replies(bot, request)
    assert "globex" in text_of(failed_post)

    # The worker waits out its lease before it tries again; move the clock past it.
    bot.clock.advance(minutes=2)
    wait_until(
        lambda: (
            bot.runtime.worker.retry_deliveries()
            or len(
                bot.fake.calls_to("chat.postMessage", lambda c: c.args.get("thread_ts") == card.ts)
            )
            >= 2
        ),
        what="a retried post",
    )
    replies = thread_replies(bot, request, count=2)
    assert len(replies) == 2 and "globex" in text_of(replies[1])
    assert status_of(bot, request) == Status.COMPLETED


def test_a_failed_upload_is_retried_without_posting_the_reply_again(bot: BotServer):
    request = submit_query(bot, "SELECT id, kind FROM events ORDER BY id")
    card = card_of(bot, request)

    def in_thread(call: Call) -> bool:
        return call.args.get("thread_ts") == card.ts

    bot.fake.fail(
        "files.completeUploadExternal",
        "internal_error",
        where=lambda args: args.get("thread_ts") == card.ts,
    )
    assert approve(bot, request).status == Status.COMPLETED
    [refused] = bot.fake.wait_for("files.completeUploadExternal", in_thread)
    assert refused.answer == {"ok": False, "error": "internal_error"}
    wait_until(lambda: delivery_of(bot, request).last_error, what="the failed delivery recorded")

    # The worker waits out its lease before it tries again; move the clock past it.
    bot.clock.advance(minutes=2)
    wait_until(
        lambda: bot.runtime.worker.retry_deliveries() or delivery_of(bot, request).delivered_at,
        what="the retried delivery",
    )
    [_, completed] = bot.fake.wait_for("files.completeUploadExternal", in_thread, count=2)
    assert completed.answer["ok"] is True
    upload = bot.fake.uploads[json.loads(completed.args["files"])[0]["id"]]
    assert upload.completed and upload.filename.endswith(".csv")
    assert len(upload.data.decode("utf-8").splitlines()) == BIG_ROWS + 1
    # The reply went out with the first attempt and was not posted again.
    [reply] = bot.fake.calls_to("chat.postMessage", in_thread)
    assert f"{BIG_ROWS:,}" in text_of(reply)


def delivery_of(bot: BotServer, request: RequestRecord) -> OutcomeDelivery:
    with bot.core.sessions() as session:
        delivery = repo.outcome_delivery(session, request.id)
        assert delivery is not None
        return delivery


def test_a_large_mongodb_result_is_uploaded_as_json_lines(bot: BotServer):
    request = submit_query(
        bot,
        "db.clicks.find({}, {_id: 0, n: 1, page: 1}).sort({n: 1})",
        target="mongo-events/events",
    )
    assert request.database_type == "mongodb"
    done = approve(bot, request)
    assert done.status == Status.COMPLETED, done.execution_error
    card = card_of(bot, request)
    [completed] = bot.fake.wait_for(
        "files.completeUploadExternal", lambda c: c.args.get("thread_ts") == card.ts
    )
    upload = bot.fake.uploads[json.loads(completed.args["files"])[0]["id"]]
    assert upload.filename.endswith(".jsonl")
    lines = upload.data.decode("utf-8").splitlines()
    assert len(lines) == BIG_ROWS
    assert json.loads(lines[0]) == {"n": 0, "page": "/p/0"}


def test_a_small_mongodb_result_is_shown_inline(bot: BotServer):
    request = submit_query(
        bot, "db.signups.find({plan: 'pro'}, {_id: 0})", target="mongo-events/events"
    )
    approve(bot, request)
    [reply] = thread_replies(bot, request)
    assert "pro" in text_of(reply)
    card = card_of(bot, request)
    assert not bot.fake.calls_to(
        "files.completeUploadExternal", lambda c: c.args.get("thread_ts") == card.ts
    )


def test_messages_are_updated_in_place_after_a_restart(bot: BotServer):
    """The message references live in the portal database, not in the process."""
    request = submit_query(bot, "SELECT 'restart'")
    dms = approval_dms(bot, request, 2)
    card = card_of(bot, request)
    # A new process: a fresh notifier knows nothing but what the portal database holds.
    fresh = SlackNotifier(bot.runtime.client, bot.core)
    decided = bot.core.requests.reject(request.uuid, user_id(bot, "U0MO"), "after restart")
    fresh.request_decided(decided)
    for ref in (*dms, card):
        bot.fake.wait_for(
            "chat.update",
            lambda c, ref=ref: c.args.get("ts") == ref.ts and "after restart" in text_of(c),
        )


def user_id(bot: BotServer, slack_id: str):
    user = bot.core.users.by_slack_id(slack_id)
    assert user is not None
    return user.id


def test_oversized_inputs_reach_slack_within_its_limits(bot: BotServer):
    """Long queries, comments, scripts and results are cut visibly, never refused by Slack."""
    comments = "why: " + "very long reason " * 200
    query = "SELECT id, " + ", ".join(f"'{'x' * 40}' AS c{i}" for i in range(55)) + " FROM events"
    request = submit_query(bot, query[:3_000], comments=comments[:3_000])
    script = "".join(
        f"UPDATE orders SET total = total WHERE id = {i}; -- {'y' * 2_400}\n" for i in range(400)
    )
    attached = bot.fake.add_file("huge.sql", script.encode(), "sql")
    response = bot.sender.submit_view(
        "U0ANN", "submit_request", script_form(bot.pg_target, [attached]), view_id="VHUGE"
    )
    if response.text:  # checking outlasted the acknowledgement; the modal followed up
        assert response.json()["response_action"] == "update"
        bot.fake.wait_for("views.update", lambda c: c.args.get("view_id") == "VHUGE")
    huge = bot.core.requests.recent(limit=1)[0]
    assert huge.script_filename == "huge.sql"

    done = approve(bot, request)  # a wide result: 57 columns of 40 characters, 3,000 rows
    assert done.status == Status.COMPLETED, done.execution_error
    thread_replies(bot, request)
    bot.sender.event("U0MO", {"type": "app_home_opened", "tab": "home"})
    bot.fake.wait_for(
        "views.publish", lambda c: c.args["user_id"] == "U0MO" and huge.short_id in text_of(c)
    )
    _, url = bot.sender.command("U0MO", "pending")
    answer_to(bot, url)

    sent = [
        c
        for method in ("chat.postMessage", "chat.update", "views.publish", "views.open")
        for c in bot.fake.calls_to(method)
        if request.short_id in text_of(c) or huge.short_id in text_of(c)
    ]
    assert len(sent) >= 8
    refused = [(c.method, c.answer.get("error")) for c in sent if not c.answer.get("ok")]
    assert refused == []


# --- App Home ------------------------------------------------------------------------------------


def buttons_in(view: dict) -> set[tuple[str, str]]:
    return {
        (element["action_id"], element.get("value", ""))
        for block in view.get("blocks", [])
        if block["type"] == "actions"
        for element in block["elements"]
    }


def test_app_home_lists_my_requests_and_what_waits_for_me(bot: BotServer):
    request = submit_query(bot, "SELECT customer FROM orders WHERE id = 1")
    assert bot.sender.event("U0MO", {"type": "app_home_opened", "tab": "home"}).status_code == 200
    [published] = bot.fake.wait_for(
        "views.publish", lambda c: c.args["user_id"] == "U0MO" and request.short_id in text_of(c)
    )
    view = published.args["view"]
    assert view["type"] == "home"
    assert (APPROVE, str(request.uuid)) in buttons_in(view)
    assert (REJECT, str(request.uuid)) in buttons_in(view)

    # Ann, a developer, sees her own request and no buttons.
    bot.sender.event("U0ANN", {"type": "app_home_opened", "tab": "home"})
    [mine] = bot.fake.wait_for(
        "views.publish", lambda c: c.args["user_id"] == "U0ANN" and request.short_id in text_of(c)
    )
    assert not buttons_in(mine.args["view"])


def test_approve_in_app_home_behaves_like_the_dm(bot: BotServer):
    request = submit_query(bot, "SELECT total FROM orders WHERE id = 2")
    dms = approval_dms(bot, request, 2)
    published_before = len(
        bot.fake.calls_to("views.publish", lambda c: c.args["user_id"] == "U0PAT")
    )

    response, _ = bot.sender.click("U0PAT", APPROVE, str(request.uuid), in_home=True)
    assert response.status_code == 200
    done = wait_status(bot, request, Status.COMPLETED)
    assert done.approver.email == "pat@example.com"
    assert thread_replies(bot, request)
    for dm in dms:
        bot.fake.wait_for(
            "chat.update",
            lambda c, dm=dm: c.args.get("ts") == dm.ts and "Approved by" in text_of(c),
        )
    # The Home tab is refreshed: the request no longer waits there.
    published = bot.fake.wait_for(
        "views.publish", lambda c: c.args["user_id"] == "U0PAT", count=published_before + 1
    )
    assert (APPROVE, str(request.uuid)) not in buttons_in(published[-1].args["view"])

    # A late click from the Home tab (no response_url) is answered in the app's DM.
    bot.sender.click("U0MO", APPROVE, str(request.uuid), in_home=True)
    [told] = bot.fake.wait_for(
        "chat.postEphemeral",
        lambda c: (
            c.args["user"] == "U0MO" and "Already approved by Pat Manager" in c.args.get("text", "")
        ),
    )
    assert told.args["channel"] == "DU0MO"


# --- who is who ----------------------------------------------------------------------------------


def test_an_unregistered_person_is_told_and_nothing_is_written(bot: BotServer):
    users_before = bot.core.users.list()
    requests_before = bot.core.requests.recent(limit=1000)
    response, response_url = bot.sender.command("U0STRANGER", trigger_id="trigger-stranger")
    assert response.status_code == 200
    answer = answer_to(bot, response_url)
    assert "not registered" in answer.args["text"]
    assert "Ada Admin (ada@example.com)" in answer.args["text"]  # whom to ask
    assert answer.args.get("response_type") == "ephemeral"
    bot.fake.wait_for("users.info", lambda c: c.args.get("user") == "U0STRANGER")
    assert not bot.fake.calls_to("views.open", lambda c: c.args["trigger_id"] == "trigger-stranger")
    assert bot.core.users.list() == users_before
    assert bot.core.requests.recent(limit=1000) == requests_before

    # Nor can they submit the form if they got hold of it.
    response = bot.sender.submit_view(
        "U0STRANGER", "submit_request", query_form(bot.pg_target, "SELECT 1")
    )
    assert response.json()["response_action"] == "errors"
    assert "not registered" in json.dumps(response.json()["errors"])
    assert bot.core.requests.recent(limit=1000) == requests_before


def test_a_person_registered_by_email_is_linked_on_first_contact(bot: BotServer):
    assert bot.core.users.by_slack_id("U0LEE") is None
    response, _ = bot.sender.command("U0LEE", trigger_id="trigger-lee")
    assert response.status_code == 200
    [opened] = bot.fake.wait_for("views.open", lambda c: c.args["trigger_id"] == "trigger-lee")
    linked = wait_until(lambda: bot.core.users.by_slack_id("U0LEE"), what="the Slack link")
    assert linked.email == "lee@example.com"
    assert bot.fake.calls_to("users.info", lambda c: c.args.get("user") == "U0LEE")
    assert opened.args["view"]["callback_id"] == "submit_request"


def test_a_deactivated_person_gets_no_modal(bot: BotServer):
    bot.core.users.add(
        email="gone@example.com", name="Gone", role="developer", pod="payments", slack_id="U0GONE"
    )
    bot.core.users.deactivate("gone@example.com")
    response, _ = bot.sender.command("U0GONE", trigger_id="trigger-gone")
    assert response.status_code == 200
    body = response.json()
    assert body["response_type"] == "ephemeral"
    assert "deactivated" in body["text"] and "Ada Admin" in body["text"]
    # Refused in the acknowledgement itself: no listener ran, so no modal can follow.
    _, url = bot.sender.command("U0ANN", "help")
    answer_to(bot, url)
    assert not bot.fake.calls_to("views.open", lambda c: c.args["trigger_id"] == "trigger-gone")


def test_someone_deactivated_while_active_can_neither_submit_nor_decide(bot: BotServer):
    request = submit_query(bot, "SELECT 7")
    # Both have just used the app, so the bot still remembers them as active.
    bot.sender.command("U0DEV2", "help")
    bot.sender.command("U0PAT", "help")
    bot.core.users.deactivate("dev2@example.com")
    bot.core.users.deactivate("pat@example.com")
    try:
        before = bot.core.requests.recent(limit=1000)
        response = bot.sender.submit_view(
            "U0DEV2", "submit_request", query_form(bot.pg_target, "SELECT 8")
        )
        assert response.json()["response_action"] == "errors"
        assert bot.core.requests.recent(limit=1000) == before

        response, url = bot.sender.click("U0PAT", APPROVE, str(request.uuid))
        assert "deactivated" in answer_to(bot, url).args["text"]
        assert status_of(bot, request) == Status.PENDING
    finally:
        for email in ("dev2@example.com", "pat@example.com"):
            with bot.core.sessions.begin() as session:
                session.execute(update(User).where(User.email == email).values(is_active=True))


# --- subcommands ---------------------------------------------------------------------------------


def test_dbquery_opens_the_submit_modal_with_grouped_targets(bot: BotServer):
    response, _ = bot.sender.command("U0ANN", trigger_id="trigger-ann")
    assert response.status_code == 200 and response.text == ""
    [opened] = bot.fake.wait_for("views.open", lambda c: c.args["trigger_id"] == "trigger-ann")
    modal = opened.args["view"]
    block_ids = [b.get("block_id") for b in modal["blocks"] if b["type"] == "input"]
    assert block_ids == ["target", "submission_type", "query", "script", "comments", "run_after"]
    target = next(b for b in modal["blocks"] if b.get("block_id") == "target")["element"]
    values = [o["value"] for g in target["option_groups"] for o in g["options"]]
    assert values == [bot.pg_target, "mongo-events/events"]


def test_target_options_are_served_for_the_external_select(bot: BotServer):
    response = bot.sender.options("U0ANN", "target", "mongo")
    assert response.status_code == 200
    groups = response.json()["option_groups"]
    assert [o["value"] for g in groups for o in g["options"]] == ["mongo-events/events"]


def test_help_list_status_and_pending(bot: BotServer):
    request = submit_query(bot, "SELECT 42")

    _, url = bot.sender.command("U0ANN", "help")
    assert "/dbquery status" in answer_to(bot, url).args["text"]
    _, url = bot.sender.command("U0ANN", "frobnicate")
    assert "/dbquery status" in answer_to(bot, url).args["text"]

    _, url = bot.sender.command("U0ANN", "list")
    listing = answer_to(bot, url)
    assert request.short_id in text_of(listing)
    assert listing.args["response_type"] == "ephemeral"

    _, url = bot.sender.command("U0ANN", f"status {request.short_id}")
    assert str(request.uuid) in text_of(answer_to(bot, url))
    _, url = bot.sender.command("U0ANN", "status ffffffff")
    assert "no request starts with" in answer_to(bot, url).args["text"]

    _, url = bot.sender.command("U0MO", "pending")
    pending = answer_to(bot, url)
    assert (APPROVE, str(request.uuid)) in buttons_in(pending.args)
    _, url = bot.sender.command("U0ANN", "pending")
    assert (APPROVE, str(request.uuid)) not in buttons_in(answer_to(bot, url).args)


# A developer of the same pod, and a manager of another pod.
@pytest.mark.parametrize("asker", ["U0DEV2", "U0OLGA"])
def test_status_of_someone_elses_request_is_refused_with_the_reason(bot: BotServer, asker: str):
    request = submit_query(bot, "SELECT customer FROM orders WHERE total > 15")
    _, url = bot.sender.command(asker, f"status {request.short_id}")
    answer = answer_to(bot, url)
    assert answer.args["response_type"] == "ephemeral"
    assert answer.args["text"].startswith(f"You can't see request `{request.short_id}`: ")
    assert (
        "only its requester, a manager of pod 'payments' or an admin may see it"
        in (answer.args["text"])
    )
    assert "total" not in text_of(answer) and str(request.uuid) not in text_of(answer)


def test_status_is_shown_to_the_requester_the_pods_managers_and_admins(bot: BotServer):
    request = submit_query(bot, "SELECT customer FROM orders WHERE total < 15")
    for asker in ("U0ANN", "U0MO", "U0ADA"):
        _, url = bot.sender.command(asker, f"status {request.short_id}")
        shown = text_of(answer_to(bot, url))
        assert str(request.uuid) in shown and "total &lt; 15" in shown, asker


# --- reminders -----------------------------------------------------------------------------------


def test_reminders_go_to_the_approval_threads_then_to_the_admins(bot: BotServer):
    request = submit_query(bot, "SELECT customer FROM orders WHERE id = 3")
    dms = {dm.slack_user_id: dm for dm in approval_dms(bot, request, 2)}
    worker = bot.runtime.worker

    bot.clock.advance(minutes=31)
    worker.send_reminders()
    for dm in dms.values():
        [reminder] = bot.fake.wait_for(
            "chat.postMessage", lambda c, dm=dm: c.args.get("thread_ts") == dm.ts
        )
        assert request.short_id in reminder.args["text"]
    assert not bot.fake.calls_to(
        "chat.postMessage",
        lambda c: c.args.get("channel") == "DU0ADA" and request.short_id in text_of(c),
    )

    # Not again before another DBQUERY_REMIND_AFTER_MIN has passed.
    worker.send_reminders()
    assert all(
        len(
            bot.fake.calls_to("chat.postMessage", lambda c, dm=dm: c.args.get("thread_ts") == dm.ts)
        )
        == 1
        for dm in dms.values()
    )

    # Past DBQUERY_ESCALATE_AFTER_MIN the admins are told too, with buttons they can use.
    bot.clock.advance(minutes=95)
    worker.send_reminders()
    [to_admin, *_] = bot.fake.wait_for(
        "chat.postMessage",
        lambda c: c.args.get("channel") == "DU0ADA" and request.short_id in text_of(c),
    )
    assert (APPROVE, str(request.uuid)) in buttons_in(to_admin.args)
    admin_dm = next(d for d in approval_dms(bot, request, 3) if d.slack_user_id == "U0ADA")
    bot.fake.wait_for("chat.postMessage", lambda c: c.args.get("thread_ts") == admin_dm.ts)
    # The admin's decision updates every DM, the admin's included.
    approve(bot, request, "U0ADA")
    for dm in (*dms.values(), admin_dm):
        bot.fake.wait_for(
            "chat.update",
            lambda c, dm=dm: c.args.get("ts") == dm.ts and "Approved by" in text_of(c),
        )
