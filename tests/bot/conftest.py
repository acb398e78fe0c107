"""Fixtures for the Slack side: a fake Slack Web API, a target database with real tables, a
portal database per module, a real server on loopback, and signed requests to it."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import psycopg
import pymongo
import pytest
import uvicorn
import yaml

from bot.server import Runtime, build_runtime, create_http_app
from core.settings import Settings
from core.wiring import Core, build_core
from db.migrate import migrate
from db.session import make_engine
from tests.bot.fakeslack import FakeSlack
from tests.conftest import free_port, pg_url_for, wait_until

SIGNING_SECRET = "test-signing-secret"
BOT_TOKEN = "xoxb-fake-token"
TARGET_SECRET_ENV = "DBQUERY_TEST_TARGET_SECRET"
AUDIT_CHANNEL = "C0AUDIT"
BIG_ROWS = 3_000

# People: Slack id -> (email, name, role, pod). Ann asks, Mo and Pat approve for payments.
PEOPLE = {
    "U0ANN": ("ann@example.com", "Ann Developer", "developer", "payments"),
    "U0MO": ("mo@example.com", "Mo Manager", "manager", "payments"),
    "U0PAT": ("pat@example.com", "Pat Manager", "manager", "payments"),
    "U0OLGA": ("olga@example.com", "Olga Other", "manager", "platform"),
    "U0ADA": ("ada@example.com", "Ada Admin", "admin", None),
    "U0DEV2": ("dev2@example.com", "Dev Two", "developer", "payments"),
}
# Registered by email only: found through users.info on first contact.
LEE = ("U0LEE", "lee@example.com", "Lee Newcomer")
# In Slack, not in dbquery.
STRANGER = ("U0STRANGER", "stranger@example.com")


# --- Slack --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fake_slack() -> Iterator[FakeSlack]:
    fake = FakeSlack(bot_token=BOT_TOKEN).start()
    for slack_id, (email, *_rest) in PEOPLE.items():
        fake.emails[slack_id] = email
    fake.emails[LEE[0]] = LEE[1]
    fake.emails[STRANGER[0]] = STRANGER[1]
    try:
        yield fake
    finally:
        fake.stop()


def sign(body: str, timestamp: str, secret: str = SIGNING_SECRET) -> str:
    base = f"v0:{timestamp}:{body}".encode()
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


class SlackSender:
    """Sends what Slack sends: signed slash commands, interactivity payloads and events."""

    def __init__(self, base_url: str, fake: FakeSlack, secret: str = SIGNING_SECRET) -> None:
        self.url = base_url.rstrip("/") + "/slack/events"
        self.fake = fake
        self.secret = secret
        self.http = httpx.Client(timeout=10)

    def post(
        self,
        body: str,
        content_type: str,
        *,
        timestamp: int | None = None,
        signature: str | None = None,
    ) -> httpx.Response:
        ts = str(int(time.time()) if timestamp is None else timestamp)
        headers = {
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": signature
            if signature is not None
            else sign(body, ts, self.secret),
        }
        return self.http.post(self.url, content=body.encode(), headers=headers)

    def form(self, fields: dict[str, str], **kwargs: Any) -> httpx.Response:
        return self.post(urlencode(fields), "application/x-www-form-urlencoded", **kwargs)

    def payload(self, payload: dict[str, Any]) -> httpx.Response:
        return self.form({"payload": json.dumps(payload)})

    def command(
        self, user: str, text: str = "", *, trigger_id: str | None = None, **kwargs: Any
    ) -> tuple[httpx.Response, str]:
        """Returns the response and the command's response_url."""
        response_url = self.fake.response_url("cmd")
        fields = {
            "token": "legacy",
            "team_id": self.fake.team_id,
            "team_domain": "fake",
            "channel_id": "C0GENERAL",
            "channel_name": "general",
            "user_id": user,
            "user_name": user.lower(),
            "command": "/dbquery",
            "text": text,
            "api_app_id": "A0DBQUERY",
            "response_url": response_url,
            "trigger_id": trigger_id or f"trigger-{uuid.uuid4().hex[:10]}",
        }
        return self.form(fields, **kwargs), response_url

    def click(
        self,
        user: str,
        action_id: str,
        value: str,
        *,
        in_home: bool = False,
        channel: str | None = None,
        message_ts: str = "1.000001",
    ) -> tuple[httpx.Response, str | None]:
        """A button click in a DM (with a response_url) or in App Home (without one)."""
        response_url = None if in_home else self.fake.response_url("click")
        payload: dict[str, Any] = {
            "type": "block_actions",
            "team": {"id": self.fake.team_id, "domain": "fake"},
            "user": {"id": user, "team_id": self.fake.team_id},
            "api_app_id": "A0DBQUERY",
            "token": "legacy",
            "trigger_id": f"trigger-{uuid.uuid4().hex[:10]}",
            "actions": [
                {
                    "type": "button",
                    "action_id": action_id,
                    "block_id": f"decision:{value}",
                    "value": value,
                    "action_ts": f"{time.time():.6f}",
                }
            ],
        }
        if in_home:
            payload["container"] = {"type": "view", "view_id": "VHOME"}
            payload["view"] = {"id": "VHOME", "type": "home", "blocks": [], "state": {"values": {}}}
        else:
            dm = channel or "D" + user
            payload["container"] = {"type": "message", "message_ts": message_ts, "channel_id": dm}
            payload["channel"] = {"id": dm, "name": "directmessage"}
            payload["message"] = {"ts": message_ts, "text": "approval", "blocks": []}
            payload["response_url"] = response_url
        return self.payload(payload), response_url

    def submit_view(
        self,
        user: str,
        callback_id: str,
        values: dict[str, dict[str, Any]],
        *,
        private_metadata: str = "",
        blocks: list[dict[str, Any]] | None = None,
        view_id: str | None = None,
    ) -> httpx.Response:
        """A view_submission; `values` maps block id -> its element's state (action id = block)."""
        payload = {
            "type": "view_submission",
            "team": {"id": self.fake.team_id, "domain": "fake"},
            "user": {"id": user, "team_id": self.fake.team_id},
            "api_app_id": "A0DBQUERY",
            "token": "legacy",
            "trigger_id": f"trigger-{uuid.uuid4().hex[:10]}",
            "view": {
                "id": view_id or f"V{uuid.uuid4().hex[:8].upper()}",
                "type": "modal",
                "callback_id": callback_id,
                "private_metadata": private_metadata,
                "blocks": blocks
                or [{"type": "input", "block_id": block} for block in values]
                or [],
                "state": {"values": {block: {block: state} for block, state in values.items()}},
                "hash": "h1",
            },
        }
        return self.payload(payload)

    def options(self, user: str, action_id: str, typed: str) -> httpx.Response:
        return self.payload(
            {
                "type": "block_suggestion",
                "team": {"id": self.fake.team_id},
                "user": {"id": user, "team_id": self.fake.team_id},
                "api_app_id": "A0DBQUERY",
                "token": "legacy",
                "action_id": action_id,
                "block_id": action_id,
                "value": typed,
                "view": {"id": "VSUBMIT", "type": "modal", "callback_id": "submit_request"},
            }
        )

    def event(self, user: str, event: dict[str, Any]) -> httpx.Response:
        body = {
            "token": "legacy",
            "team_id": self.fake.team_id,
            "api_app_id": "A0DBQUERY",
            "type": "event_callback",
            "event_id": f"Ev{uuid.uuid4().hex[:10].upper()}",
            "event_time": int(time.time()),
            "event": {"user": user, **event},
        }
        return self.post(json.dumps(body), "application/json")


def query_form(target: str, query: str, comments: str | None = None) -> dict[str, dict[str, Any]]:
    """The submit modal's state for a pasted query."""
    return {
        "target": {"type": "static_select", "selected_option": {"value": target}},
        "submission_type": {"type": "radio_buttons", "selected_option": {"value": "query"}},
        "query": {"type": "plain_text_input", "value": query},
        "script": {"type": "file_input", "files": []},
        "comments": {"type": "plain_text_input", "value": comments},
    }


def script_form(target: str, files: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    form = query_form(target, "")
    form["submission_type"]["selected_option"]["value"] = "script"
    form["query"]["value"] = None
    form["script"]["files"] = files
    return form


# --- databases ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def target_database(make_pg_database: Callable[[], str]) -> str:
    """A throwaway PostgreSQL database with real tables the requests run against."""
    name = make_pg_database()
    with psycopg.connect(pg_url_for(name), autocommit=True) as conn:
        conn.execute("CREATE TABLE orders (id int PRIMARY KEY, customer text, total numeric)")
        conn.execute(
            "INSERT INTO orders VALUES (1, 'acme', 10.50), (2, 'globex', 20.00), (3, 'initech', 7)"
        )
        conn.execute("CREATE TABLE events (id int PRIMARY KEY, kind text, note text)")
        conn.execute(
            "INSERT INTO events SELECT g, 'kind-' || (g % 7), repeat('x', 20) "
            f"FROM generate_series(1, {BIG_ROWS}) g"
        )
        conn.execute("CREATE TABLE applied (id serial PRIMARY KEY, note text)")
    return name


@pytest.fixture(scope="session")
def target_secret() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(TARGET_SECRET_ENV, json.dumps({"username": "postgres", "password": ""}))
        yield


@pytest.fixture(scope="session")
def mongo_target(mongo_server: tuple[str, int]) -> tuple[str, int]:
    """nx-27017 with an `events` database: a few signups and many clicks."""
    host, port = mongo_server
    with pymongo.MongoClient(host, port, serverSelectionTimeoutMS=5000) as client:
        events = client["events"]
        events.signups.delete_many({})
        events.signups.insert_many([{"n": n, "plan": "pro" if n % 2 else "free"} for n in range(3)])
        events.clicks.delete_many({})
        events.clicks.insert_many([{"n": n, "page": f"/p/{n % 10}"} for n in range(BIG_ROWS)])
    return host, port


def write_catalogue(
    path: Path,
    target_db: str,
    mongo: tuple[str, int] = ("127.0.0.1", 1),
    extra_instances: list[dict[str, Any]] = (),
) -> Path:
    """The test catalogue; `extra_instances` are added, each a copy of pg-shop with overrides."""
    catalogue = {
        "audit_channel": AUDIT_CHANNEL,
        "pods": [{"id": "payments", "name": "Payments"}, {"id": "platform", "name": "Platform"}],
        "instances": [
            {
                "id": "pg-shop",
                "name": "Shop PostgreSQL",
                "type": "postgresql",
                "host": "127.0.0.1",
                "port": 5432,
                "databases": [target_db],
                "secret": f"env:{TARGET_SECRET_ENV}",
                "statement_timeout_s": 20,
            },
            {
                "id": "mongo-events",
                "name": "Events MongoDB",
                "type": "mongodb",
                "host": mongo[0],
                "port": mongo[1],
                "databases": ["events"],
            },
        ],
    }
    for extra in extra_instances:
        catalogue["instances"].append({**catalogue["instances"][0], **extra})
    path.write_text(yaml.safe_dump(catalogue, allow_unicode=True), encoding="utf-8")
    return path


def seed_people(core: Core) -> None:
    for slack_id, (email, name, role, pod) in PEOPLE.items():
        core.users.add(email=email, name=name, role=role, pod=pod, slack_id=slack_id)
    core.users.add(email=LEE[1], name=LEE[2], role="developer", pod="payments")


class Clock:
    """The request service's clock: real time plus an offset tests can move forward."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, **delta: float) -> None:
        self.offset += timedelta(**delta)


# --- a running server -------------------------------------------------------------------------


@dataclass
class BotServer:
    url: str
    runtime: Runtime
    sender: SlackSender
    fake: FakeSlack
    clock: Clock
    target_db: str
    server: uvicorn.Server
    thread: threading.Thread
    settings: Settings
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def core(self) -> Core:
        return self.runtime.core

    @property
    def pg_target(self) -> str:
        return f"pg-shop/{self.target_db}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def make_settings(portal_url: str, catalogue: Path, results: Path, fake: FakeSlack) -> Settings:
    return Settings(
        database_url=portal_url,
        config_path=catalogue,
        results_dir=results,
        slack_bot_token=BOT_TOKEN,
        slack_signing_secret=SIGNING_SECRET,
        slack_app_token=None,
        slack_api_url=fake.api_url,
        workers=4,
    )


def start_server(
    portal_url: str,
    workdir: Path,
    fake: FakeSlack,
    target_db: str,
    mongo: tuple[str, int] = ("127.0.0.1", 1),
    extra_instances: list[dict[str, Any]] = (),
) -> BotServer:
    """The real app (build_runtime + create_http_app) under uvicorn in a thread on a free port."""
    migrate(make_engine(portal_url))
    catalogue = write_catalogue(workdir / "dbquery.yml", target_db, mongo, extra_instances)
    settings = make_settings(portal_url, catalogue, workdir / "results", fake)
    clock = Clock()
    core = build_core(settings, clock=clock)
    seed_people(core)
    runtime = build_runtime(settings, core)
    app = create_http_app(core, runtime.bolt_app, runtime.worker, metrics=runtime.metrics)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the bot server did not start")
        time.sleep(0.02)
    url = f"http://127.0.0.1:{port}"
    return BotServer(
        url, runtime, SlackSender(url, fake), fake, clock, target_db, server, thread, settings
    )


@pytest.fixture(scope="module")
def bot(
    tmp_path_factory: pytest.TempPathFactory,
    fake_slack: FakeSlack,
    target_database: str,
    target_secret: None,
    mongo_target: tuple[str, int],
) -> Iterator[BotServer]:
    """A served bot on a SQLite portal database of its own (one per test module)."""
    workdir = tmp_path_factory.mktemp("bot")
    portal_url = f"sqlite:///{workdir / 'portal.sqlite3'}"
    server = start_server(portal_url, workdir, fake_slack, target_database, mongo_target)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def pg_bot(
    tmp_path_factory: pytest.TempPathFactory,
    fake_slack: FakeSlack,
    target_database: str,
    target_secret: None,
    make_pg_database: Callable[[], str],
) -> Iterator[BotServer]:
    """A served bot on a PostgreSQL portal database (row locks, concurrent clicks)."""
    workdir = tmp_path_factory.mktemp("pgbot")
    portal_url = pg_url_for(make_pg_database(), driver="psycopg")
    server = start_server(portal_url, workdir, fake_slack, target_database)
    try:
        yield server
    finally:
        server.stop()
        server.core.engine.dispose()


__all__ = [
    "AUDIT_CHANNEL",
    "BIG_ROWS",
    "LEE",
    "PEOPLE",
    "STRANGER",
    "BotServer",
    "SlackSender",
    "query_form",
    "script_form",
    "sign",
    "wait_until",
]
