"""Every way the submit form can be wrong comes back on the right field, and writes nothing."""

from __future__ import annotations

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


def test_a_slow_download_is_picked_up_by_the_next_submit(bot: BotServer, fake_slack: FakeSlack):
    # Slack holds the file back longer than the acknowledgement budget allows, once.
    script = b"SELECT id FROM orders;\n"
    attached = fake_slack.add_file("slow.sql", script)
    release = fake_slack.hold_downloads(attached["id"])
    form = script_form(bot.pg_target, [attached])

    first = bot.sender.submit_view("U0ANN", "submit_request", form)
    assert first.json()["errors"]["script"].startswith("Slack is slow to hand over the file")
    release()

    before = len(bot.core.requests.recent(limit=1000))
    second = bot.sender.submit_view("U0ANN", "submit_request", form)
    assert second.status_code == 200 and second.text == ""
    assert len(bot.core.requests.recent(limit=1000)) == before + 1
    assert bot.core.requests.recent(limit=1)[0].script_content == script.decode()
    # One download served both presses of Submit.
    assert len(fake_slack.calls_to("download", lambda c: c.args["file"] == attached["id"])) == 1
