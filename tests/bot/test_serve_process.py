"""`dbquery serve` as it is deployed: a subprocess configured only through the environment."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.bot.conftest import BOT_TOKEN, SIGNING_SECRET, SlackSender, query_form
from tests.bot.fakeslack import FakeSlack
from tests.bot.serve_process import Served, dbquery, prepare_portal, serve_env, start_serve
from tests.conftest import free_port

ANN = ("ann@example.com", "developer", "U0ANN")
MO = ("mo@example.com", "manager", "U0MO")


def serve_with_ann_and_mo(
    workdir: Path,
    fake: FakeSlack,
    target_db: str,
    *,
    signing_secret: str | None = SIGNING_SECRET,
    **extra: str,
) -> Served:
    """`serve` over a fresh SQLite portal holding Ann (developer) and Mo (manager)."""
    portal_url = f"sqlite:///{workdir / 'portal.sqlite3'}"
    env = serve_env(
        workdir, portal_url, target_db, fake.api_url, signing_secret=signing_secret, **extra
    )
    prepare_portal(env, ANN, MO)
    return start_serve(env, workdir / "serve.log")


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, fake_slack: FakeSlack, target_database: str
) -> Iterator[Served]:
    server = serve_with_ann_and_mo(tmp_path_factory.mktemp("serve"), fake_slack, target_database)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def socket_served(
    tmp_path_factory: pytest.TempPathFactory, fake_slack: FakeSlack, target_database: str
) -> Iterator[Served]:
    """`serve` in Socket Mode: an app-level token and no signing secret."""
    server = serve_with_ann_and_mo(
        tmp_path_factory.mktemp("socket"),
        fake_slack,
        target_database,
        signing_secret=None,
        SLACK_APP_TOKEN="xapp-fake-app-token",
    )
    try:
        yield server
    finally:
        server.stop()


def test_serve_answers_health_and_runs_a_request_end_to_end(
    served: Served, fake_slack: FakeSlack, target_database: str
):
    url = served.url
    assert httpx.get(url + "/healthz").status_code == 200
    assert "dbquery_requests" in httpx.get(url + "/metrics").text

    sender = SlackSender(url, fake_slack)
    form = query_form(f"pg-shop/{target_database}", "SELECT customer FROM orders ORDER BY id")
    assert sender.submit_view("U0ANN", "submit_request", form).text == ""
    [approval] = fake_slack.wait_for("chat.postMessage", lambda c: c.args.get("channel") == "DU0MO")
    uuid = next(
        element["value"]
        for block in approval.args["blocks"]
        if block["type"] == "actions"
        for element in block["elements"]
        if element["action_id"] == "approve_request"
    )
    [card] = fake_slack.wait_for(
        "chat.postMessage",
        lambda c: c.args.get("channel") == "DU0ANN" and uuid in json.dumps(c.args),
    )
    response, _ = sender.click("U0MO", "approve_request", uuid)
    assert response.status_code == 200
    reply = fake_slack.wait_for(
        "chat.postMessage",
        lambda c: c.args.get("thread_ts") is not None and "globex" in json.dumps(c.args),
    )
    assert reply[0].args["channel"] == "DU0ANN"
    assert card.args["channel"] == "DU0ANN"


def test_serve_stops_cleanly_on_sigterm(served: Served):
    proc = served.proc
    proc.send_signal(signal.SIGTERM)
    # uvicorn shuts the app down, then re-raises SIGTERM so supervisors see why it ended.
    assert proc.wait(timeout=30) in (0, -signal.SIGTERM)
    output = served.log.read_text()
    assert "worker stopped; no request is executing" in output
    assert "Traceback" not in output
    assert BOT_TOKEN not in output and SIGNING_SECRET not in output


def test_serve_without_slack_settings_says_what_to_set(served: Served):
    bare = {k: v for k, v in served.env.items() if not k.startswith("SLACK_")}
    result = dbquery(bare, "serve", "--port", str(free_port()))
    assert result.returncode == 2
    assert "SLACK_BOT_TOKEN" in result.stderr and "manifest.yml" in result.stderr


# --- Socket Mode ---------------------------------------------------------------------------------


def test_socket_mode_receives_slack_payloads_over_the_websocket(
    socket_served: Served, fake_slack: FakeSlack
):
    socket_mode = fake_slack.socket_mode
    socket_mode.wait_connected()
    command = {
        "command": "/dbquery",
        "text": "",
        "user_id": "U0ANN",
        "team_id": fake_slack.team_id,
        "channel_id": "C0GENERAL",
        "response_url": fake_slack.response_url("socket"),
        "trigger_id": "trigger-socket",
    }
    envelope = socket_mode.send("slash_commands", command)
    socket_mode.wait_ack(envelope)
    [opened] = fake_slack.wait_for("views.open", lambda c: c.args["trigger_id"] == "trigger-socket")
    assert opened.args["view"]["callback_id"] == "submit_request"

    home = {
        "type": "event_callback",
        "team_id": fake_slack.team_id,
        "event": {"type": "app_home_opened", "user": "U0MO", "tab": "home"},
        "event_id": "EvSOCKET1",
    }
    socket_mode.wait_ack(socket_mode.send("events_api", home))
    fake_slack.wait_for("views.publish", lambda c: c.args["user_id"] == "U0MO")

    # Health and metrics stay on HTTP; Slack's HTTP endpoint is not served in Socket Mode.
    assert httpx.get(socket_served.url + "/healthz").status_code == 200
    assert httpx.post(socket_served.url + "/slack/events", content=b"{}").status_code == 404


def test_socket_mode_serve_stops_cleanly_on_sigterm(socket_served: Served):
    socket_served.proc.send_signal(signal.SIGTERM)
    assert socket_served.proc.wait(timeout=30) in (0, -signal.SIGTERM)
    output = socket_served.log.read_text()
    assert "worker stopped; no request is executing" in output
    assert "Traceback" not in output and "xapp-fake-app-token" not in output


def test_serve_with_a_token_slack_refuses_says_so(served: Served):
    env = {**served.env, "SLACK_BOT_TOKEN": "xoxb-revoked", "SLACK_SIGNING_SECRET": "s"}
    result = dbquery(env, "serve", "--port", str(free_port()))
    assert result.returncode == 2
    assert "Slack did not accept SLACK_BOT_TOKEN" in result.stderr
    assert "invalid_auth" in result.stderr
    assert "xoxb-revoked" not in result.stderr
