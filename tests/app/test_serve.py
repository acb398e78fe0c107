"""`dbquery serve` serves Slack, the web portal, the API, health and metrics from one process,
on one core: what happens on one surface shows on the other."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import httpx
import pytest

from tests.bot.conftest import SlackSender, query_form
from tests.bot.fakeslack import FakeSlack
from tests.bot.serve_process import Served, dbquery, prepare_portal, serve_env, start_serve
from tests.conftest import VENV_BIN, free_port, pg_url_for, wait_until

ANN = ("ann@example.com", "developer", "U0ANN")
MO = ("mo@example.com", "manager", "U0MO")
PASSWORD = "mo's long web passphrase"


def set_password(env: dict[str, str], email: str, password: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(VENV_BIN / "dbquery"), "users", "set-password", "--email", email],
        env=env, input=password + "\n", capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def serve(workdir, fake: FakeSlack, target: str, **extra: str) -> Served:
    portal = f"sqlite:///{workdir / 'portal.sqlite3'}"
    env = serve_env(workdir, portal, target, fake.api_url, **extra)
    prepare_portal(env, ANN, MO)
    return start_serve(env, workdir / "serve.log")


@pytest.fixture(scope="module")
def served(tmp_path_factory, fake_slack: FakeSlack, target_database: str) -> Iterator[Served]:
    workdir = tmp_path_factory.mktemp("serve")
    server = serve(workdir, fake_slack, target_database)
    try:
        yield server
    finally:
        server.stop()


def test_one_process_serves_slack_pages_api_health_and_metrics(served: Served):
    assert httpx.get(served.url + "/healthz").json() == {"status": "ok"}
    assert "dbquery_requests" in httpx.get(served.url + "/metrics").text
    signin = httpx.get(served.url + "/signin")
    assert signin.status_code == 200 and "Sign in to dbquery" in signin.text
    assert signin.headers["x-frame-options"] == "DENY"
    me = httpx.get(served.url + "/api/v1/auth/me")
    assert me.status_code == 401 and me.json()["error"]["code"] == "unauthenticated"
    assert httpx.get(served.url + "/api/docs").status_code == 200
    unsigned = httpx.post(served.url + "/slack/events", content=b"command=/dbquery")
    assert unsigned.status_code == 401


def test_a_slack_request_is_approved_on_the_web_and_its_result_reaches_slack(
    served: Served, fake_slack: FakeSlack, target_database: str
):
    weak = set_password(served.env, MO[0], "short")
    assert weak.returncode == 2
    assert "at least 12 characters" in weak.stderr
    done = set_password(served.env, MO[0], PASSWORD)
    assert done.returncode == 0, done.stderr
    assert "password set for mo@example.com" in done.stdout

    sender = SlackSender(served.url, fake_slack)
    form = query_form(f"pg-shop/{target_database}", "SELECT customer FROM orders ORDER BY id")
    assert sender.submit_view("U0ANN", "submit_request", form).text == ""
    fake_slack.wait_for("chat.postMessage", lambda c: c.args.get("channel") == "DU0MO")

    web = httpx.Client(base_url=served.url, timeout=20)
    login = web.post("/api/v1/auth/login", json={"email": MO[0], "password": PASSWORD})
    assert login.status_code == 200, login.text
    web.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
    [pending] = web.get("/api/v1/approvals").json()["requests"]
    assert pending["requester"]["email"] == ANN[0]
    approved = web.post(f"/api/v1/requests/{pending['id']}/approve")
    assert approved.status_code == 200 and approved.json()["decided_by"] == MO[0]

    done = wait_until(
        lambda: web.get(f"/api/v1/requests/{pending['id']}").json()["status"] == "completed",
        20,
        "the request approved on the web to run",
    )
    assert done
    reply = fake_slack.wait_for(
        "chat.postMessage",
        lambda c: (
            c.args.get("thread_ts") is not None
            and c.args.get("channel") == "DU0ANN"
            and "globex" in json.dumps(c.args)
        ),
    )
    assert reply
    updated = fake_slack.wait_for(
        "chat.update",
        lambda c: c.args.get("channel") == "DU0ANN" and pending["id"] in json.dumps(c.args),
    )
    assert updated


def test_web_off_serves_slack_alone(tmp_path, fake_slack: FakeSlack, target_database: str):
    server = serve(tmp_path, fake_slack, target_database, DBQUERY_WEB="off")
    try:
        assert httpx.get(server.url + "/healthz").status_code == 200
        assert httpx.get(server.url + "/signin").status_code == 404
        assert httpx.get(server.url + "/api/v1/auth/me").status_code == 404
    finally:
        server.stop()


def test_a_postgresql_portal_needs_a_signing_secret(
    tmp_path, fake_slack: FakeSlack, target_database: str, make_pg_database
):
    env = serve_env(
        tmp_path, pg_url_for(make_pg_database(), "psycopg"), target_database, fake_slack.api_url
    )
    del env["DBQUERY_JWT_SECRET"]
    prepare_portal(env)
    result = dbquery(env, "serve", "--port", str(free_port()))
    assert result.returncode == 2
    assert "set DBQUERY_JWT_SECRET" in result.stderr
    short = dbquery({**env, "DBQUERY_JWT_SECRET": "too short"}, "serve", "--port", "1")
    assert short.returncode == 2 and "at least 32 bytes" in short.stderr
    assert "too short" not in short.stderr
