"""Delivering outcomes to Slack: a streamed upload with flat memory, rate limits waited out,
and cards that never go backwards."""

from __future__ import annotations

import hashlib
import json
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.metrics import Metrics
from bot.notifier import SlackNotifier
from bot.server import make_web_client
from core.jobs import Worker
from core.lifecycle import Status
from core.records import RequestRecord, UserRecord
from core.requests import Submission
from core.wiring import Core, build_core
from db import repository as repo
from db.migrate import migrate
from db.session import make_engine
from tests.bot.conftest import (
    SlackSender,
    make_settings,
    query_form,
    seed_people,
    write_catalogue,
)
from tests.bot.fakeslack import Call, FakeSlack
from tests.bot.serve_process import Served, prepare_portal, serve_env, start_serve

# --- a notifier and a worker on a portal of their own (nothing runs in the background) -------


@dataclass
class SlackSide:
    core: Core
    notifier: SlackNotifier
    worker: Worker
    fake: FakeSlack
    target: str
    ann: UserRecord
    mo: UserRecord


@pytest.fixture(scope="module")
def side(
    tmp_path_factory: pytest.TempPathFactory,
    fake_slack: FakeSlack,
    target_database: str,
    target_secret: None,
) -> Iterator[SlackSide]:
    workdir = tmp_path_factory.mktemp("delivery")
    portal_url = f"sqlite:///{workdir / 'portal.sqlite3'}"
    engine = make_engine(portal_url)
    migrate(engine)
    engine.dispose()
    settings = make_settings(
        portal_url,
        write_catalogue(workdir / "dbquery.yml", target_database),
        workdir / "results",
        fake_slack,
    )
    core = build_core(settings)
    seed_people(core)
    client = make_web_client(settings, Metrics(core.requests.counts_by_status))
    notifier = SlackNotifier(client, core)
    worker = Worker(core, notifier)  # never started: tests call its delivery themselves
    ann, mo = core.users.by_slack_id("U0ANN"), core.users.by_slack_id("U0MO")
    assert ann is not None and mo is not None
    try:
        yield SlackSide(core, notifier, worker, fake_slack, f"pg-shop/{target_database}", ann, mo)
    finally:
        worker.shutdown()
        core.engine.dispose()


def submitted(side: SlackSide, query: str = "SELECT 1") -> RequestRecord:
    """A pending request whose card and approval DM are in Slack."""
    request, _ = side.core.requests.submit(
        side.ann.id, Submission(target=side.target, submission_type="query", query=query)
    )
    side.notifier.request_submitted(request, [side.mo])
    return request


def finished(
    side: SlackSide, request: RequestRecord, summary: dict, result_file: Path | None = None
) -> RequestRecord:
    """Approved, claimed and completed with `summary`, its outcome queued for delivery."""
    side.core.requests.approve(request.uuid, side.mo.id)
    claimed, lease = side.core.queue.claim(request.uuid)
    try:
        return side.core.queue.finish(
            claimed.id,
            result_json=json.dumps(summary),
            result_file=str(result_file) if result_file else None,
        )
    finally:
        lease.release()


def in_thread_of(side: SlackSide, request: RequestRecord) -> Callable[[Call], bool]:
    card = side.notifier.refs.card(request.id)
    assert card is not None
    return lambda call: call.args.get("thread_ts") == card.ts


# --- rate limits --------------------------------------------------------------------------------

STORM = 4  # 429 answers in a row, each asking for Retry-After: 1


def test_an_outcome_lands_within_seconds_of_a_rate_limit_storm_ending_and_only_once(
    side: SlackSide, tmp_path: Path
):
    request = submitted(side, "SELECT id FROM orders")
    rows = 500
    result = tmp_path / "result.csv"
    result.write_text("id\n" + "".join(f"{n}\n" for n in range(rows)))
    summary = {"columns": ["id"], "preview": [[0], [1]], "row_count": rows, "file_format": "csv"}
    done = finished(side, request, summary, result)
    in_thread = in_thread_of(side, request)
    card_ts = side.notifier.refs.card(request.id).ts
    side.fake.rate_limit(
        "chat.postMessage", STORM, where=lambda args: args.get("thread_ts") == card_ts
    )
    side.fake.rate_limit(
        "files.completeUploadExternal", STORM, where=lambda args: args.get("thread_ts") == card_ts
    )

    assert side.worker.deliver_outcome_now(done.id) is True

    for method in ("chat.postMessage", "files.completeUploadExternal"):
        calls = side.fake.calls_to(method, in_thread)
        limited = [c for c in calls if c.status == 429]
        accepted = [c for c in calls if c.status == 200]
        assert len(limited) == STORM, method
        assert len(accepted) == 1 and accepted[0].answer["ok"] is True, method
        # Slack asked for 1 s each time: the call after the storm's last 429 follows at once.
        assert accepted[0].at - limited[-1].at < 3.0, method
    [complete] = side.fake.calls_to(
        "files.completeUploadExternal", lambda c: in_thread(c) and c.status == 200
    )
    [shared] = json.loads(complete.args["files"])
    assert side.fake.uploads[shared["id"]].data == result.read_bytes()
    assert [u for u in side.fake.uploads.values() if u.completed and u.thread_ts == card_ts] == [
        side.fake.uploads[shared["id"]]
    ]
    with side.core.sessions() as session:
        delivery = repo.outcome_delivery(session, done.id)
        assert delivery is not None
        assert (delivery.attempts, delivery.last_error) == (1, None)
        assert delivery.delivered_at is not None


# --- cards never go backwards -------------------------------------------------------------------

ORDER = [Status.PENDING, Status.APPROVED, Status.EXECUTING, Status.COMPLETED]
CARD_STATUS = re.compile(r" is (pending|approved|executing|completed) \(submitted")


def test_racing_notifications_never_show_an_older_state_on_the_card(side: SlackSide):
    """Notifications about one request arrive from several threads in any order, each carrying
    the state it was sent for; the card shows states in lifecycle order and ends at the last."""
    request = submitted(side)
    card = side.notifier.refs.card(request.id)
    shuffle = random.Random(9)
    records = [request]
    threads: list[threading.Thread] = []

    def notify_all_so_far() -> None:
        calls = []
        for record in records:
            calls += [
                (side.notifier.request_decided, record),
                (side.notifier.execution_started, record),
            ] * 3
        shuffle.shuffle(calls)
        for call, record in calls:
            thread = threading.Thread(target=call, args=(record,))
            thread.start()
            threads.append(thread)

    # The state moves forward while notifications, old and new, are still in flight.
    side.core.requests.approve(request.uuid, side.mo.id)
    records.append(side.core.requests.get(request.uuid))
    notify_all_so_far()
    claimed, lease = side.core.queue.claim(request.uuid)
    records.append(claimed)
    notify_all_so_far()
    records.append(side.core.queue.finish(claimed.id, result_json='{"row_count": 0}'))
    lease.release()
    notify_all_so_far()
    for thread in threads:
        thread.join(timeout=30)

    shown = [
        Status(CARD_STATUS.search(c.args["text"]).group(1))
        for c in side.fake.calls_to("chat.update", lambda c: c.args.get("ts") == card.ts)
    ]
    assert len(shown) == len(threads)
    assert shown[-1] == Status.COMPLETED
    ranks = [ORDER.index(status) for status in shown]
    assert ranks == sorted(ranks), f"the card went backwards: {shown}"


# --- a large file through `serve`: streamed, memory flat ---------------------------------------

BIG_FILE_ROWS = 100_000  # the default row cap
ROW_PAD = 800  # about 80 MB of CSV
RSS_GROWTH_LIMIT_MB = 30


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.M).group(1)) / 1024


class RssSampler:
    """The highest resident set size of a process while it runs, sampled every 10 ms."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak_mb = pid, rss_mb(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self.peak_mb = max(self.peak_mb, rss_mb(self.pid))

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def approval_uuid(fake: FakeSlack, marker: str) -> str:
    [dm] = fake.wait_for(
        "chat.postMessage",
        lambda c: c.args.get("channel") == "DU0MO" and marker in json.dumps(c.args),
    )
    return next(
        element["value"]
        for block in dm.args["blocks"]
        if block["type"] == "actions"
        for element in block["elements"]
        if element["action_id"] == "approve_request"
    )


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, fake_slack: FakeSlack, target_database: str
) -> Iterator[Served]:
    workdir = tmp_path_factory.mktemp("serve-upload")
    # Uncompressed, so the file streamed is as large as the result.
    env = serve_env(
        workdir,
        f"sqlite:///{workdir / 'portal.sqlite3'}",
        target_database,
        fake_slack.api_url,
        DBQUERY_COMPRESS_OVER_MB="100000",
    )
    prepare_portal(
        env, ("ann@example.com", "developer", "U0ANN"), ("mo@example.com", "manager", "U0MO")
    )
    server = start_serve(env, workdir / "serve.log")
    try:
        yield server
    finally:
        server.stop()


def run_through_serve(
    served: Served, fake: FakeSlack, target_db: str, query: str
) -> tuple[str, str]:
    """Submit as Ann, approve as Mo; returns the request's uuid and its card's ts."""
    sender = SlackSender(served.url, fake)
    marker = f"m{time.monotonic_ns()}"
    response = sender.submit_view(
        "U0ANN", "submit_request", query_form(f"pg-shop/{target_db}", query, marker)
    )
    assert response.status_code == 200 and response.text == ""
    uuid = approval_uuid(fake, marker)
    [card] = fake.wait_for(
        "chat.postMessage",
        lambda c: c.args.get("channel") == "DU0ANN" and uuid in json.dumps(c.args),
    )
    response, _ = sender.click("U0MO", "approve_request", uuid)
    assert response.status_code == 200
    return uuid, card.answer["ts"]


def test_a_large_result_is_streamed_to_the_thread_with_flat_memory(
    served: Served, fake_slack: FakeSlack, target_database: str
):
    # A first request loads everything a delivery uses, so the idle size below includes it.
    _, warm_card = run_through_serve(served, fake_slack, target_database, "SELECT 1 AS warm")
    fake_slack.wait_for("chat.postMessage", lambda c: c.args.get("thread_ts") == warm_card)
    idle_mb = rss_mb(served.proc.pid)

    query = (
        f"SELECT g AS id, repeat('x', {ROW_PAD}) AS pad FROM generate_series(1, {BIG_FILE_ROWS}) g"
    )
    with RssSampler(served.proc.pid) as sampler:
        uuid, card_ts = run_through_serve(served, fake_slack, target_database, query)
        [complete] = fake_slack.wait_for(
            "files.completeUploadExternal",
            lambda c: c.args.get("thread_ts") == card_ts and c.answer.get("ok") is True,
            timeout=120,
        )
    upload = fake_slack.uploads[json.loads(complete.args["files"])[0]["id"]]
    result_file = Path(served.env["DBQUERY_RESULTS_DIR"]) / f"{uuid}.csv"
    assert upload.size == result_file.stat().st_size > BIG_FILE_ROWS * ROW_PAD
    digest = hashlib.sha256()
    with result_file.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    assert upload.sha256() == digest.hexdigest()
    assert upload.filename == f"dbquery-{uuid[:8]}.csv"
    [sent] = fake_slack.calls_to("upload", lambda c: c.args["file_id"] == upload.file_id)
    assert sent.headers.get("content-length") == str(upload.size)
    growth = sampler.peak_mb - idle_mb
    assert growth <= RSS_GROWTH_LIMIT_MB, (
        f"serve grew from {idle_mb:.0f} MB to {sampler.peak_mb:.0f} MB delivering"
        f" {upload.size / 2**20:.0f} MB"
    )
    assert "Traceback" not in served.log.read_text()
