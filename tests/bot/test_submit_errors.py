"""Every way the submit form can be wrong comes back on the right field, and writes nothing."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.bot.conftest import BotServer, query_form, script_form
from tests.bot.fakeslack import FakeSlack

Form = Callable[[BotServer], dict[str, dict[str, Any]]]


def with_type(value: str | None) -> Form:
    def form(bot: BotServer) -> dict[str, dict[str, Any]]:
        state = query_form(bot.pg_target, "SELECT 1")
        state["submission_type"]["selected_option"] = {"value": value} if value else None
        return state

    return form


def with_script(name: str, content: bytes, size: int | None = None) -> Form:
    def form(bot: BotServer) -> dict[str, dict[str, Any]]:
        attached = bot.fake.add_file(name, content)
        if size is not None:
            attached["size"] = size
        return script_form(bot.pg_target, [attached])

    return form


CASES: list[tuple[str, Form, str, str]] = [
    (
        "empty query",
        lambda bot: query_form(bot.pg_target, "   "),
        "query",
        "enter a query to run",
    ),
    (
        "query over Slack's input limit",
        lambda bot: query_form(bot.pg_target, "SELECT 1 " + "-" * 3_000),
        "query",
        "3,000-character limit",
    ),
    (
        "SQL syntax error",
        lambda bot: query_form(bot.pg_target, "SELEC id FROM orders"),
        "query",
        'syntax error at or near "SELEC"',
    ),
    (
        "Mongo parse error",
        lambda bot: query_form("mongo-events/events", "db.orders.find({status: )"),
        "query",
        "expected a value",
    ),
    (
        "unknown instance",
        lambda bot: query_form("pg-nowhere/shop", "SELECT 1"),
        "target",
        "unknown target",
    ),
    (
        "database not in the catalogue",
        lambda bot: query_form("pg-shop/postgres", "SELECT 1"),
        "target",
        "unknown target",
    ),
    ("no target", lambda bot: query_form("", "SELECT 1"), "target", "unknown target"),
    ("no type", with_type(None), "submission_type", "choose a query or a script"),
    (
        "script type without a file",
        lambda bot: script_form(bot.pg_target, []),
        "script",
        "attach a script file",
    ),
    ("script of the wrong type", with_script("run.py", b"print(1)"), "script", ".sql, .js or .txt"),
    (
        "script over 1 MB (by Slack's metadata)",
        with_script("big.sql", b"SELECT 1;", size=1_048_577),
        "script",
        "over 1 MB",
    ),
    (
        "script over 1 MB (by its bytes)",
        with_script("big.sql", b"SELECT 1;\n" * 110_000),
        "script",
        "over 1 MB",
    ),
    (
        "script not UTF-8",
        with_script("latin.sql", "SELECT 'é';".encode("latin-1")),
        "script",
        "UTF-8",
    ),
    ("empty script", with_script("empty.sql", b"  \n"), "script", "empty"),
    (
        "script with a SQL syntax error",
        with_script("broken.sql", b"SELECT 1;\nUPDATE orders SET WHERE id = 1;\n"),
        "script",
        "syntax error",
    ),
]


@pytest.mark.parametrize(("case", "form", "block", "says"), CASES, ids=[c[0] for c in CASES])
def test_a_wrong_field_is_reported_on_its_block_and_nothing_is_written(
    bot: BotServer, case: str, form: Form, block: str, says: str
):
    before = bot.core.requests.recent(limit=1000)
    posts_before = len(bot.fake.calls_to("chat.postMessage"))

    response = bot.sender.submit_view("U0ANN", "submit_request", form(bot))

    assert response.status_code == 200
    body = response.json()
    assert body["response_action"] == "errors"
    assert list(body["errors"]) == [block]
    assert says in body["errors"][block]
    assert bot.core.requests.recent(limit=1000) == before
    assert len(bot.fake.calls_to("chat.postMessage")) == posts_before


def submit_slowly(
    bot: BotServer, fake: FakeSlack, name: str, script: bytes, view_id: str
) -> tuple[dict[str, Any], Callable[[], None]]:
    """Submit a script whose download Slack holds back past the acknowledgement budget."""
    attached = fake.add_file(name, script)
    release = fake.hold_downloads(attached["id"])
    form = script_form(bot.pg_target, [attached])
    started = time.monotonic()
    response = bot.sender.submit_view("U0ANN", "submit_request", form, view_id=view_id)
    assert time.monotonic() - started < 3, "Slack allows 3 seconds"
    return response.json(), release


def test_a_slow_check_turns_the_modal_into_a_progress_note_then_says_it_is_stored(
    bot: BotServer, fake_slack: FakeSlack
):
    before = len(bot.core.requests.recent(limit=1000))
    answer, release = submit_slowly(
        bot, fake_slack, "slow.sql", b"SELECT id FROM orders;\n", "VSLOW1"
    )
    assert answer["response_action"] == "update"
    assert "Checking *slow.sql*" in json.dumps(answer["view"])
    assert len(bot.core.requests.recent(limit=1000)) == before

    release()
    [update] = fake_slack.wait_for("views.update", lambda c: c.args.get("view_id") == "VSLOW1")
    request = bot.core.requests.recent(limit=1)[0]
    assert request.script_filename == "slow.sql"
    assert f"`{request.short_id}` is stored" in json.dumps(update.args["view"])
    fake_slack.wait_for(
        "chat.postMessage",
        lambda c: c.args.get("channel") == "DU0ANN" and request.short_id in json.dumps(c.args),
    )


def test_a_slow_check_that_fails_says_why_and_stores_nothing(bot: BotServer, fake_slack: FakeSlack):
    before = bot.core.requests.recent(limit=1000)
    answer, release = submit_slowly(
        bot, fake_slack, "bad.sql", b"SELECT 1;\nDELETE FROM WHERE;\n", "VSLOW2"
    )
    assert answer["response_action"] == "update"
    release()
    [update] = fake_slack.wait_for("views.update", lambda c: c.args.get("view_id") == "VSLOW2")
    shown = json.dumps(update.args["view"])
    assert "not stored" in shown and "syntax error" in shown
    assert bot.core.requests.recent(limit=1000) == before


def test_a_problem_found_after_the_modal_was_closed_arrives_in_a_dm(
    bot: BotServer, fake_slack: FakeSlack
):
    fake_slack.fail("views.update", "not_found", where=lambda a: a.get("view_id") == "VSLOW3")
    answer, release = submit_slowly(
        bot, fake_slack, "gone.sql", "SELECT 'é';".encode("latin-1"), "VSLOW3"
    )
    assert answer["response_action"] == "update"
    release()
    [told] = fake_slack.wait_for(
        "chat.postEphemeral", lambda c: c.args["user"] == "U0ANN" and "UTF-8" in c.args["text"]
    )
    assert told.args["channel"] == "DU0ANN"
    assert "not stored" in told.args["text"]
