"""`dbquery serve` as it is deployed: a subprocess configured only through the environment."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.bot.conftest import (
    BOT_TOKEN,
    SIGNING_SECRET,
    TARGET_SECRET_ENV,
    SlackSender,
    query_form,
    write_catalogue,
)
from tests.bot.fakeslack import FakeSlack
from tests.conftest import VENV_BIN, free_port, wait_for_port


def dbquery(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(VENV_BIN / "dbquery"), *args], env=env, capture_output=True, text=True, timeout=60
    )


@dataclass
class Served:
    url: str
    env: dict[str, str]
    proc: subprocess.Popen
    log: Path


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, fake_slack: FakeSlack, target_database: str
) -> Iterator[Served]:
    workdir: Path = tmp_path_factory.mktemp("serve")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DBQUERY_"))},
        "DBQUERY_DATABASE_URL": f"sqlite:///{workdir / 'portal.sqlite3'}",
        "DBQUERY_CONFIG": str(write_catalogue(workdir / "dbquery.yml", target_database)),
        "DBQUERY_RESULTS_DIR": str(workdir / "results"),
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": fake_slack.api_url,
        TARGET_SECRET_ENV: json.dumps({"username": "postgres", "password": ""}),
    }
    assert dbquery(env, "migrate").returncode == 0
    for email, role, slack_id in (
        ("ann@example.com", "developer", "U0ANN"),
        ("mo@example.com", "manager", "U0MO"),
    ):
        added = dbquery(
            env, "users", "add", "--email", email, "--name", email.split("@")[0],
            "--role", role, "--pod", "payments", "--slack-id", slack_id,
        )  # fmt: skip
        assert added.returncode == 0, added.stderr
    port = free_port()
    log_path = workdir / "serve.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [str(VENV_BIN / "dbquery"), "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_port(port, proc, "dbquery serve")
        yield Served(f"http://127.0.0.1:{port}", env, proc, log_path)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


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
