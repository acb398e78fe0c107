"""Socket Mode as Slack drives it: every envelope acknowledged, promptly, through connection
refreshes with traffic in flight, including envelopes nobody listens for."""

from __future__ import annotations

import itertools
import statistics
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.bot.conftest import BOT_TOKEN
from tests.bot.fake_socket_mode import RefreshingSlack
from tests.bot.serve_process import Served, prepare_portal, serve_env, start_serve

ANN = ("ann@example.com", "developer", "U0ANN")
MO = ("mo@example.com", "manager", "U0MO")
TRAFFIC_S = 3.0
SEND_EVERY_S = 0.01
# Slack's own deadline is 3 s; the aim is 100 ms. On a loaded two-core machine a few envelopes
# can wait on the scheduler, so the bound holds for 95% of them and the slowest gets 1 s.
TYPICAL_BOUND_S = 0.1
SLOWEST_BOUND_S = 1.0


@pytest.fixture(scope="module")
def refreshing() -> Iterator[RefreshingSlack]:
    fake = RefreshingSlack(bot_token=BOT_TOKEN).start()
    fake.emails.update({"U0ANN": ANN[0], "U0MO": MO[0]})
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture(scope="module")
def socket_served(
    tmp_path_factory: pytest.TempPathFactory, refreshing: RefreshingSlack, target_database: str
) -> Iterator[Served]:
    workdir = tmp_path_factory.mktemp("socket-refresh")
    env = serve_env(
        workdir,
        f"sqlite:///{workdir / 'portal.sqlite3'}",
        target_database,
        refreshing.api_url,
        signing_secret=None,
        SLACK_APP_TOKEN="xapp-fake-app-token",
    )
    prepare_portal(env, ANN, MO)
    served = start_serve(env, workdir / "serve.log")
    try:
        yield served
    finally:
        served.stop()


def envelopes(fake: RefreshingSlack) -> Iterator[tuple[str, dict[str, Any], bool]]:
    """(kind, payload, accepts a response) of what people do, and of what nobody listens for."""
    home = {
        "type": "event_callback",
        "team_id": fake.team_id,
        "event": {"type": "app_home_opened", "user": "U0MO", "tab": "home"},
    }
    command = {
        "command": "/dbquery",
        "text": "help",
        "user_id": "U0ANN",
        "team_id": fake.team_id,
        "response_url": fake.response_url("socket"),
        "trigger_id": "trigger-socket",
    }
    old_button = {
        "type": "block_actions",
        "team": {"id": fake.team_id},
        "user": {"id": "U0MO"},
        "actions": [{"action_id": "a_button_of_an_older_version", "value": "x"}],
    }
    unheard_event = {
        "type": "event_callback",
        "team_id": fake.team_id,
        "event": {"type": "reaction_added", "user": "U0MO", "reaction": "tada"},
    }
    return itertools.cycle(
        [
            ("events_api", home, False),
            ("slash_commands", command, True),
            ("interactive", old_button, True),
            ("events_api", unheard_event, False),
            ("a_kind_slack_adds_later", {"anything": 1}, False),
        ]
    )


def test_every_envelope_is_acknowledged_promptly_through_refreshes(
    socket_served: Served, refreshing: RefreshingSlack
):
    server = refreshing.socket_mode
    server.wait_connections(1)
    sent: list[str] = []
    stop = threading.Event()

    def traffic() -> None:
        for kind, payload, accepts in envelopes(refreshing):
            if stop.is_set():
                return
            sent.append(server.send(kind, payload, accepts))
            stop.wait(SEND_EVERY_S)

    sender = threading.Thread(target=traffic)
    sender.start()
    try:
        # Refreshes while envelopes keep coming: the old connection stays open briefly, as
        # Slack keeps it, and is then closed by the server.
        stop.wait(TRAFFIC_S / 4)
        server.refresh("refresh_requested", close_after_s=0.5)
        server.wait_connections(2)
        stop.wait(TRAFFIC_S / 4)
        server.refresh("warning", close_after_s=0.2)
        server.wait_connections(3)
        stop.wait(TRAFFIC_S / 4)
        # A connection lost without warning: the app reconnects by itself.
        server.drop()
        server.wait_connections(4)
        stop.wait(TRAFFIC_S / 4)
    finally:
        stop.set()
        sender.join()

    server.wait_acks(sent)
    latencies = server.latencies(sent)
    unacknowledged = len(sent) - len(latencies)
    ordered = sorted(latencies)
    p50 = statistics.median(ordered)
    p95 = ordered[int(len(ordered) * 0.95) - 1]
    p99 = ordered[int(len(ordered) * 0.99) - 1]
    print(
        f"\nsocket mode: {len(sent)} envelopes, {unacknowledged} unacknowledged, "
        f"{server.connections_opened} connections; ack p50 {p50 * 1000:.1f} ms, "
        f"p95 {p95 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, max {ordered[-1] * 1000:.1f} ms"
    )
    assert unacknowledged == 0
    assert server.connections_opened == 4
    assert p95 < TYPICAL_BOUND_S
    assert ordered[-1] < SLOWEST_BOUND_S
    # Envelopes sent on a connection after Slack asked the app to leave it were answered too.
    assert {server.sent_on[e] for e in sent} == {1, 2, 3, 4}
    assert "Traceback" not in socket_served.log.read_text()


def test_an_envelope_of_the_wrong_shape_is_acknowledged_and_refused(
    socket_served: Served, refreshing: RefreshingSlack
):
    server = refreshing.socket_mode
    wrong = [
        server.send("interactive", {"type": "block_actions", "user": {"id": 5}, "actions": []}),
        server.send("slash_commands", {"command": "/dbquery", "user_id": None}),
        server.send("events_api", {"type": "event_callback", "event": "nope"}, False),
        server.send("interactive", "not an object"),  # type: ignore[arg-type]
    ]
    started = time.monotonic()
    server.wait_acks(wrong)
    assert len(server.latencies(wrong)) == len(wrong)
    assert time.monotonic() - started < 3
    assert "Traceback" not in socket_served.log.read_text()
