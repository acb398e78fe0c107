"""The Slack surface hears core's events: a decision made anywhere updates every Slack message."""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from bot.subscriber import InOrderPerKey
from core.events import PrivateNotice
from core.lifecycle import Status
from db import repository as repo
from tests.bot.conftest import BotServer
from tests.bot.test_story import (
    approval_dms,
    card_of,
    status_of,
    submit_query,
    text_of,
    thread_replies,
    wait_status,
)
from tests.conftest import wait_until

SIGN_IN_URL = "https://dbquery.example.com/sign-in?token=s3cr3t-one-time-token"


def test_an_approval_made_outside_slack_updates_the_card_and_every_dm(bot: BotServer):
    request = submit_query(bot, "SELECT id FROM orders WHERE id = 1")
    dms = approval_dms(bot, request, 2)
    card = card_of(bot, request)
    mo = bot.core.users.by_slack_id("U0MO")

    bot.core.requests.approve(request.uuid, mo.id)  # as the web surface will

    assert wait_status(bot, request, Status.COMPLETED, Status.FAILED).status == Status.COMPLETED
    for dm in dms:
        [update] = bot.fake.wait_for(
            "chat.update", lambda c, dm=dm: c.args.get("ts") == dm.ts and "Mo Manager" in text_of(c)
        )
        assert not any(b["type"] == "actions" for b in update.args["blocks"])
    bot.fake.wait_for("chat.update", lambda c: c.args.get("ts") == card.ts)
    [reply] = thread_replies(bot, request)
    assert reply.args["channel"] == card.channel_id
    # Told once: one reply under the card, one approval DM per manager.
    assert len(approval_dms(bot, request, 2)) == 2


def test_a_rejection_made_outside_slack_is_delivered_under_the_card(bot: BotServer):
    request = submit_query(bot, "DELETE FROM orders WHERE id = 2")
    dms = approval_dms(bot, request, 2)
    pat = bot.core.users.by_slack_id("U0PAT")

    bot.core.requests.reject(request.uuid, pat.id, "Ask the reporting team")

    [reply] = thread_replies(bot, request)
    assert "Ask the reporting team" in text_of(reply)
    for dm in dms:
        bot.fake.wait_for(
            "chat.update", lambda c, dm=dm: c.args.get("ts") == dm.ts and "Rejected" in text_of(c)
        )
    delivered = wait_until(
        lambda: (d := _delivery(bot, request.id)) and d.delivered_at and d,
        what="the rejection's delivery to be recorded",
    )
    assert delivered.attempts == 1
    assert status_of(bot, request) == Status.REJECTED


def _delivery(bot: BotServer, request_id: int):
    with bot.core.sessions() as session:
        return repo.outcome_delivery(session, request_id)


def test_a_private_notice_is_a_dm_with_the_link_as_a_button(bot: BotServer):
    ann = bot.core.users.by_slack_id("U0ANN")
    expires = datetime.now(UTC) + timedelta(minutes=15)
    bot.core.events.publish(
        PrivateNotice(ann, "Your sign-in link for dbquery.", SIGN_IN_URL, "Sign in", expires)
    )
    [sent] = bot.fake.wait_for(
        "chat.postMessage", lambda c: "Your sign-in link" in (c.args.get("text") or "")
    )
    assert sent.args["channel"] == "DU0ANN"
    [button] = [
        element
        for block in sent.args["blocks"]
        if block["type"] == "actions"
        for element in block["elements"]
    ]
    assert button["url"] == SIGN_IN_URL
    assert button["text"]["text"] == "Sign in"


def test_a_private_notice_for_someone_not_on_slack_logs_no_link(
    bot: BotServer, caplog: pytest.LogCaptureFixture
):
    [lee] = [u for u in bot.core.users.list() if u.email == "lee@example.com"]
    if lee.slack_user_id:
        pytest.skip("an earlier test linked Lee to Slack")
    caplog.set_level(logging.INFO)
    before = len(bot.fake.calls_to("chat.postMessage"))
    bot.core.events.publish(PrivateNotice(lee, "Set your password.", SIGN_IN_URL, "Set it"))
    wait_until(
        lambda: any("lee@example.com" in r.getMessage() for r in caplog.records),
        what="the warning about a notice nobody could receive",
    )
    assert not any(SIGN_IN_URL in r.getMessage() for r in caplog.records)
    assert len(bot.fake.calls_to("chat.postMessage")) == before


def test_tasks_of_one_key_run_in_order_and_one_at_a_time():
    ran: dict[str, list[int]] = {"a": [], "b": []}
    running: dict[str, int] = {"a": 0, "b": 0}
    overlaps: list[str] = []
    lock = threading.Lock()
    done = threading.Event()

    def task(key: str, n: int) -> None:
        with lock:
            running[key] += 1
            if running[key] > 1:
                overlaps.append(key)
        time.sleep(0.001)  # widens the window in which an overlap would show
        with lock:
            running[key] -= 1
            ran[key].append(n)
            if len(ran["a"]) == len(ran["b"]) == 50:
                done.set()

    with ThreadPoolExecutor(8) as pool:
        tasks = InOrderPerKey(pool)
        for n in range(50):
            for key in ("a", "b"):
                tasks.submit(key, "a test task", lambda key=key, n=n: task(key, n))
        assert done.wait(timeout=30)
    assert ran == {"a": list(range(50)), "b": list(range(50))}
    assert overlaps == []
