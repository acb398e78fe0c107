"""The HTTP side of `serve`: request signatures, /healthz, /metrics and Slack's rate limits."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace
from urllib.parse import urlencode

import httpx
import pytest
import uvicorn

from bot.server import create_http_app
from core.lifecycle import Status
from db.session import make_engine
from tests.bot.conftest import BotServer, query_form, sign, wait_until
from tests.conftest import free_port


def command_body(user: str = "U0ANN") -> str:
    return f"command=%2Fdbquery&text=help&user_id={user}&team_id=T0FAKE&response_url=&trigger_id=t1"


# --- signatures ----------------------------------------------------------------------------------


def test_a_correctly_signed_request_is_accepted(bot: BotServer):
    response = bot.sender.post(command_body(), "application/x-www-form-urlencoded")
    assert response.status_code == 200, response.text


def test_a_failure_after_the_acknowledgement_does_not_replace_it(bot: BotServer):
    # No response_url: the answer after ack() fails at once, racing Bolt's 10 ms ack poll.
    for _ in range(20):
        response = bot.sender.post(command_body(), "application/x-www-form-urlencoded")
        assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "tamper",
    ["wrong secret", "body changed after signing", "no signature", "stale timestamp", "future"],
)
def test_a_bad_signature_or_a_stale_timestamp_is_refused(bot: BotServer, tamper: str):
    body = command_body()
    now = int(time.time())
    timestamp, signature = now, sign(body, str(now))
    if tamper == "wrong secret":
        signature = sign(body, str(now), secret="not-the-secret")
    elif tamper == "body changed after signing":
        signature = sign(body.replace("help", "list"), str(now))
    elif tamper == "no signature":
        signature = ""
    elif tamper == "stale timestamp":
        timestamp = now - 6 * 60  # Slack's window is 5 minutes
        signature = sign(body, str(timestamp))
    elif tamper == "future":
        timestamp = now + 6 * 60
        signature = sign(body, str(timestamp))

    response = bot.sender.post(
        body, "application/x-www-form-urlencoded", timestamp=timestamp, signature=signature
    )
    assert response.status_code == 401


def test_a_refused_request_reaches_no_listener(bot: BotServer):
    form = query_form(bot.pg_target, "SELECT 1")
    payload = {
        "type": "view_submission",
        "user": {"id": "U0ANN"},
        "view": {
            "type": "modal",
            "callback_id": "submit_request",
            "state": {"values": {block: {block: state} for block, state in form.items()}},
        },
    }
    body = urlencode({"payload": json.dumps(payload)})
    before = bot.core.requests.recent(limit=1000)
    response = bot.sender.post(
        body, "application/x-www-form-urlencoded", signature="v0=" + "0" * 64
    )
    assert response.status_code == 401
    assert bot.core.requests.recent(limit=1000) == before
    # The same payload, signed, is a request.
    assert bot.sender.post(body, "application/x-www-form-urlencoded").text == ""
    assert len(bot.core.requests.recent(limit=1000)) == len(before) + 1


# --- health and metrics ---------------------------------------------------------------------------


def test_healthz_is_200_while_the_portal_database_answers(bot: BotServer):
    response = httpx.get(bot.url + "/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_healthz_is_503_when_the_portal_database_does_not_answer(bot: BotServer):
    dead = make_engine(f"postgresql://postgres@127.0.0.1:{free_port()}/gone")
    core = replace(bot.core, engine=dead)
    server = uvicorn.Server(
        uvicorn.Config(
            create_http_app(core, None, None),
            host="127.0.0.1",
            port=free_port(),
            log_level="warning",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, what="the second server")
        port = server.config.port
        response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=20)
        assert response.status_code == 503
        assert response.json()["status"] == "unavailable"
        # No Slack endpoint when no Bolt app is given (Socket Mode serves only health/metrics).
        assert httpx.post(f"http://127.0.0.1:{port}/slack/events", content=b"").status_code == 404
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def metric(bot: BotServer, name: str, **labels: str) -> float | None:
    text = httpx.get(bot.url + "/metrics").text
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(f"{name}{{{wanted}}} ") or (not labels and line.startswith(name + " ")):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_metrics_count_requests_by_status_and_time_executions(bot: BotServer):
    response = httpx.get(bot.url + "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    pending_before = metric(bot, "dbquery_requests", status="pending")
    assert pending_before is not None
    completed_before = metric(bot, "dbquery_requests", status="completed") or 0

    response = bot.sender.submit_view(
        "U0ANN", "submit_request", query_form(bot.pg_target, "SELECT 1 AS one")
    )
    assert response.text == ""
    request = bot.core.requests.recent(limit=1)[0]
    assert metric(bot, "dbquery_requests", status="pending") == pending_before + 1

    bot.sender.click("U0MO", "approve_request", str(request.uuid))
    wait_until(lambda: bot.core.requests.get(request.uuid).status == Status.COMPLETED)
    wait_until(
        lambda: metric(
            bot,
            "dbquery_execution_duration_seconds_count",
            database_type="postgresql",
            status="completed",
        ),
        what="the execution to be timed",
    )
    assert metric(bot, "dbquery_requests", status="completed") == completed_before + 1
    assert metric(bot, "dbquery_requests", status="pending") == pending_before


# --- Slack API faults ---------------------------------------------------------------------------


def test_a_rate_limited_call_is_retried_after_retry_after(bot: BotServer):
    bot.fake.rate_limit("views.open", times=1, retry_after=1)
    started = time.monotonic()
    response, _ = bot.sender.command("U0ANN", trigger_id="trigger-429")
    # The acknowledgement does not wait for Slack's rate limit.
    assert response.status_code == 200
    assert time.monotonic() - started < 1
    calls = bot.fake.wait_for(
        "views.open", lambda c: c.args["trigger_id"] == "trigger-429", count=2
    )
    assert len(calls) == 2
    assert (
        metric(bot, "dbquery_slack_api_errors_total", error="ratelimited", method="views.open") == 1
    )


def test_a_slack_error_never_changes_a_request(bot: BotServer):
    bot.fake.fail(
        "chat.postMessage",
        "channel_not_found",
        times=5,
        where=lambda a: a.get("channel") == "DU0MO",
    )
    response = bot.sender.submit_view(
        "U0ANN", "submit_request", query_form(bot.pg_target, "SELECT 2 AS two")
    )
    assert response.text == ""
    request = bot.core.requests.recent(limit=1)[0]
    # Pat still gets the DM; Mo's failed; the request is pending as submitted.
    bot.fake.wait_for(
        "chat.postMessage",
        lambda c: c.args.get("channel") == "DU0PAT" and request.short_id in json.dumps(c.args),
    )
    assert bot.core.requests.get(request.uuid).status == Status.PENDING
    assert (
        metric(
            bot,
            "dbquery_slack_api_errors_total",
            error="channel_not_found",
            method="chat.postMessage",
        )
        == 1
    )
