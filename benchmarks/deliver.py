"""A large result end to end: from the Approve click to the file in the requester's thread.

Creates a throwaway database with a 1,000,000-row table on DBQUERY_TEST_PG_URL (default
postgresql://postgres@127.0.0.1:5432/postgres), starts a fake Slack Web API on loopback (with
a real HTTP upload endpoint that writes what it receives to disk) and `dbquery serve` as a
subprocess on a SQLite portal. Each bot run submits the SELECT of all rows as a signed Slack
view submission, then times from the signed Approve click until files.completeUploadExternal
has shared the uploaded file in the card's thread. The baseline is `psql -c "\\copy (SELECT
...) TO file CSV HEADER"` of the same query. Runs alternate (psql, bot, psql, bot, ...); the
figures are medians of 3. It prints the ratio, the bytes uploaded and serve's RSS: idle (after
a warm-up request), its peak (VmHWM) during the timed deliveries, and its peak before them.

Goals: <= 1.3 x psql's time, serve's peak RSS <= 150 MB.

    .venv/bin/python benchmarks/deliver.py
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.measure import (  # noqa: E402
    create_database,
    drop_database,
    peak_rss_mb,
    reset_peak_rss,
    rss_mb,
)
from benchmarks.measure import pg_url as url_for  # noqa: E402
from tests.bot.conftest import BOT_TOKEN, SlackSender, query_form  # noqa: E402
from tests.bot.fakeslack import FakeSlack  # noqa: E402
from tests.bot.serve_process import Served, prepare_portal, serve_env, start_serve  # noqa: E402

ROWS = 1_000_000
RUNS = 3
RATIO_GOAL = 1.3
RSS_GOAL_MB = 150
DELIVERY_TIMEOUT_S = 600
QUERY = "SELECT id, name, created_at, amount, note FROM items ORDER BY id"
ANN = ("ann@example.com", "developer", "U0ANN")
MO = ("mo@example.com", "manager", "U0MO")


def create_items_database() -> str:
    name = create_database()
    with psycopg.connect(url_for(name), autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL,"
            " created_at timestamptz NOT NULL, amount numeric(12, 2), note text NOT NULL)"
        )
        conn.execute(
            "INSERT INTO items SELECT g, 'item number ' || g,"
            " timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second',"
            " CASE WHEN g % 10 = 0 THEN NULL ELSE (g % 100000) / 100.0 END,"
            " md5(g::text)"
            f" FROM generate_series(1, {ROWS}) g"
        )
        conn.execute("VACUUM ANALYZE items")
    return name


def time_psql(database: str, out_dir: Path) -> tuple[float, int]:
    target = out_dir / "psql.csv"
    command = f"\\copy ({QUERY}) TO '{target}' CSV HEADER"
    started = time.perf_counter()
    subprocess.run(["psql", "-X", "-q", "-d", url_for(database), "-c", command], check=True)
    seconds = time.perf_counter() - started
    size = target.stat().st_size
    target.unlink()
    return seconds, size


def start_bot(workdir: Path, fake: FakeSlack, database: str) -> Served:
    env = serve_env(workdir, f"sqlite:///{workdir / 'portal.sqlite3'}", database, fake.api_url)
    # The whole table is the result: raise the instance's row cap above it.
    catalogue_path = Path(env["DBQUERY_CONFIG"])
    catalogue = yaml.safe_load(catalogue_path.read_text())
    catalogue["instances"][0].update(max_rows=ROWS * 2, statement_timeout_s=600)
    catalogue_path.write_text(yaml.safe_dump(catalogue))
    prepare_portal(env, ANN, MO)
    return start_serve(env, workdir / "serve.log")


def time_bot(
    served: Served, fake: FakeSlack, database: str, query: str
) -> tuple[float, int, dict[str, float]]:
    """Seconds from the Approve click to the file shared in the thread, the bytes sent, and
    when (seconds after the click) each step of the delivery reached the fake Slack."""
    sender = SlackSender(served.url, fake)
    marker = f"bench-{uuid.uuid4().hex[:8]}"
    response = sender.submit_view(
        "U0ANN", "submit_request", query_form(f"pg-shop/{database}", query, marker)
    )
    assert response.status_code == 200 and response.text == "", response.text
    [dm] = fake.wait_for(
        "chat.postMessage",
        lambda c: c.args.get("channel") == "DU0MO" and marker in json.dumps(c.args),
    )
    request_uuid = next(
        element["value"]
        for block in dm.args["blocks"]
        if block["type"] == "actions"
        for element in block["elements"]
        if element["action_id"] == "approve_request"
    )
    [card] = fake.wait_for(
        "chat.postMessage",
        lambda c: c.args.get("channel") == "DU0ANN" and request_uuid in json.dumps(c.args),
    )
    card_ts = card.answer["ts"]
    started = time.monotonic()
    response, _ = sender.click("U0MO", "approve_request", request_uuid)
    assert response.status_code == 200
    [complete] = fake.wait_for(
        "files.completeUploadExternal",
        lambda c: c.args.get("thread_ts") == card_ts and c.answer.get("ok") is True,
        timeout=DELIVERY_TIMEOUT_S,
    )
    seconds = complete.at - started
    file_id = json.loads(complete.args["files"])[0]["id"]
    upload = fake.uploads[file_id]
    [reply] = fake.calls_to("chat.postMessage", lambda c: c.args.get("thread_ts") == card_ts)
    [asked] = fake.calls_to(
        "files.getUploadURLExternal", lambda c: c.answer.get("file_id") == file_id
    )
    [sent] = fake.calls_to("upload", lambda c: c.args["file_id"] == file_id)
    executing = fake.calls_to(
        "chat.update",
        lambda c: c.args.get("ts") == card_ts and " is executing " in c.args.get("text", ""),
    )
    steps = {
        "executing on the card": executing[0].at - started if executing else float("nan"),
        "reply posted": reply.at - started,
        "upload URL": asked.at - started,
        "bytes received": sent.at - started,
        "shared": seconds,
    }
    if upload.path is not None:
        upload.path.unlink()  # keep the disk free for the next run
    return seconds, upload.size, steps


def warm_up(served: Served, fake: FakeSlack, database: str) -> None:
    """A first small delivery loads everything a delivery uses, so idle RSS includes it."""
    sender = SlackSender(served.url, fake)
    marker = f"warm-{uuid.uuid4().hex[:8]}"
    query = "SELECT id, note FROM items ORDER BY id LIMIT 5000"
    sender.submit_view("U0ANN", "submit_request", query_form(f"pg-shop/{database}", query, marker))
    [dm] = fake.wait_for(
        "chat.postMessage",
        lambda c: c.args.get("channel") == "DU0MO" and marker in json.dumps(c.args),
    )
    request_uuid = next(
        e["value"]
        for b in dm.args["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
        if e["action_id"] == "approve_request"
    )
    sender.click("U0MO", "approve_request", request_uuid)
    fake.wait_for("files.completeUploadExternal", lambda c: c.answer.get("ok") is True)


def main() -> None:
    print(f"creating a {ROWS:,}-row table ...", flush=True)
    database = create_items_database()
    fake = FakeSlack(bot_token=BOT_TOKEN).start()
    served = None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            served = start_bot(workdir, fake, database)
            warm_up(served, fake, database)
            idle_mb = rss_mb(served.proc.pid)
            start_peak_mb = peak_rss_mb(served.proc.pid)
            reset_peak_rss(served.proc.pid)
            psql_runs, bot_runs = [], []
            for run in range(1, RUNS + 1):
                psql_runs.append(time_psql(database, workdir))
                bot_runs.append(time_bot(served, fake, database, QUERY))
                steps = ", ".join(f"{k} {v:.2f}" for k, v in bot_runs[-1][2].items())
                print(
                    f"  run {run}: psql {psql_runs[-1][0]:6.2f} s, bot {bot_runs[-1][0]:6.2f} s"
                    f" (after the click: {steps})",
                    flush=True,
                )
            peak_mb = peak_rss_mb(served.proc.pid)
            report(psql_runs, bot_runs, idle_mb, peak_mb, start_peak_mb)
            log = served.log.read_text()
            if "Traceback" in log:
                print("serve logged a traceback:\n" + log[-4000:])
    finally:
        if served is not None:
            served.stop()
        fake.stop()
        drop_database(database)


def report(
    psql_runs: list[tuple[float, int]],
    bot_runs: list[tuple[float, int, dict[str, float]]],
    idle_mb: float,
    peak_mb: float,
    start_peak_mb: float,
) -> None:
    psql_s = statistics.median(s for s, _ in psql_runs)
    bot_s = statistics.median(s for s, _, _ in bot_runs)
    ratio = bot_s / psql_s
    csv_bytes = psql_runs[-1][1]
    uploaded = bot_runs[-1][1]
    singles = ", ".join(
        f"{b / p:.2f}x" for (p, _), (b, _, _) in zip(psql_runs, bot_runs, strict=True)
    )
    verdict = "ok" if ratio <= RATIO_GOAL and peak_mb <= RSS_GOAL_MB else "MISSED"
    print(f"\n{ROWS:,} rows, approval to file in the thread (median of {RUNS}, alternating)")
    print(f"  psql \\copy          {psql_s:7.2f} s  ({csv_bytes / 2**20:6.1f} MB CSV)")
    print(
        f"  dbquery serve       {bot_s:7.2f} s  ratio {ratio:4.2f}x (goal <= {RATIO_GOAL}x;"
        f" single runs {singles})"
    )
    print(f"  bytes uploaded      {uploaded:,} ({uploaded / 2**20:.1f} MB)")
    print(
        f"  serve RSS           idle {idle_mb:6.1f} MB, peak during the deliveries"
        f" {peak_mb:6.1f} MB (goal <= {RSS_GOAL_MB} MB; {peak_mb - idle_mb:+.1f} MB over idle)"
        f"  {verdict}"
    )
    print(f"  serve peak RSS from start-up to the warm-up delivery: {start_peak_mb:.1f} MB")


if __name__ == "__main__":
    main()
