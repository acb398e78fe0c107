"""Four Approve clicks at once (two managers, each twice) run the request exactly once.

On a PostgreSQL portal database, as in production, with the clicks as concurrent signed HTTP
requests to the running server.
"""

from __future__ import annotations

import json
import threading
import uuid

import psycopg

from bot.messages import MessageRefs
from core.lifecycle import Status
from tests.bot.conftest import BotServer, query_form, wait_until
from tests.conftest import pg_url_for


def test_four_concurrent_approve_clicks_execute_the_request_once(pg_bot: BotServer):
    bot = pg_bot
    note = f"once-{uuid.uuid4().hex[:8]}"
    form = query_form(bot.pg_target, f"INSERT INTO applied (note) VALUES ('{note}')")
    assert bot.sender.submit_view("U0ANN", "submit_request", form).text == ""
    request = bot.core.requests.recent(limit=1)[0]
    refs = MessageRefs(bot.core.sessions)
    card = wait_until(lambda: refs.card(request.id), what="the card")

    clickers = ["U0MO", "U0PAT", "U0MO", "U0PAT"]
    start = threading.Barrier(len(clickers))
    results: list[tuple[int, str | None]] = []
    lock = threading.Lock()

    def click(user: str) -> None:
        start.wait()
        response, response_url = bot.sender.click(user, "approve_request", str(request.uuid))
        with lock:
            results.append((response.status_code, response_url))

    threads = [threading.Thread(target=click, args=(user,)) for user in clickers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert [status for status, _ in results] == [200] * 4

    done = wait_until(
        lambda: (r := bot.core.requests.get(request.uuid)).status == Status.COMPLETED and r,
        what="the request to complete",
    )
    # Three clickers are told who got there first.
    answers = wait_until(
        lambda: len(found := _answers(bot, results)) == 3 and found, what="3 answers"
    )
    for answer in answers:
        assert f"Already approved by {done.approver.name}" in answer.args["text"]

    reply = bot.fake.wait_for(
        "chat.postMessage",
        lambda c: c.args.get("thread_ts") == card.ts and c.args.get("channel") == card.channel_id,
    )
    assert bot.runtime.worker.wait_idle(timeout=30)
    with psycopg.connect(pg_url_for(bot.target_db)) as conn:
        rows = conn.execute("SELECT count(*) FROM applied WHERE note = %s", (note,)).fetchone()[0]
    assert rows == 1
    replies = bot.fake.calls_to(
        "chat.postMessage",
        lambda c: c.args.get("thread_ts") == card.ts and c.args.get("channel") == card.channel_id,
    )
    assert replies == reply
    assert "INSERT" in json.dumps(replies[0].args["blocks"])


def _answers(bot: BotServer, results: list[tuple[int, str | None]]) -> list:
    return [
        call
        for _, url in results
        for call in bot.fake.calls_to("response_url", lambda c, url=url: url.endswith(c.path))
    ]
