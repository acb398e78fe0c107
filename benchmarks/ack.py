"""How fast `dbquery serve` acknowledges Slack, against a bare Bolt app that only acks.

Slack gives an app 3 seconds to acknowledge a slash command or a button click. This sends
500 signed requests (half `/dbquery`, half Approve clicks on a request someone already
approved) at concurrency 20 to:

* `dbquery serve`, a subprocess on a SQLite portal database (the default deployment), with
  its Web API calls going to a fake Slack on loopback (a process of its own); and
* a bare Bolt app behind the same FastAPI route, whose listeners only call ack().

Both run in the same invocation, alternately, RUNS times each; the figures are medians over
the runs. Latency is measured by a minimal keep-alive HTTP client (see send_all). It prints
p50/p99 acknowledgement latency, the ratio to the bare app and the servers' peak RSS.
Goals: p99 <= 100 ms and within 1.5x of the bare app.

    .venv/bin/python benchmarks/ack.py [--portal-url postgresql+psycopg://.../empty_db]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.measure import peak_rss_mb  # noqa: E402
from tests.bot.fakeslack import FakeSlack  # noqa: E402
from tests.conftest import free_port, wait_for_port  # noqa: E402

REQUESTS = 500
CONCURRENCY = 20
WARMUP = 60
RUNS = 3
P99_GOAL_MS = 100
RATIO_GOAL = 1.5
SECRET = "bench-signing-secret"
TOKEN = "xoxb-bench-token"
VENV_BIN = Path(sys.executable).parent


def sign(body: str, timestamp: str, secret: str) -> str:
    """Slack's v0 request signature."""
    base = f"v0:{timestamp}:{body}".encode()
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


# --- child processes ---------------------------------------------------------------------------


def serve_fake() -> None:
    """The fake Slack Web API in a process of its own, so it does not slow the load generator."""
    fake = FakeSlack(bot_token=TOKEN).start()
    print(json.dumps({"root": fake.root, "team_id": fake.team_id}), flush=True)
    sys.stdin.read()  # until the parent closes our stdin
    fake.stop()


class FakeProcess:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--fake"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        assert self.proc.stdout is not None
        info = json.loads(self.proc.stdout.readline())
        self.root: str = info["root"]
        self.team_id: str = info["team_id"]
        self.api_url = self.root + "api/"

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def serve_bare(port: int, api_url: str) -> None:
    import uvicorn
    from fastapi import FastAPI
    from slack_bolt import App
    from slack_sdk import WebClient

    from bot.server import mount_slack_events

    bolt = App(
        client=WebClient(token=TOKEN, base_url=api_url),
        signing_secret=SECRET,
        process_before_response=False,
    )
    bolt.command("/dbquery")(lambda ack: ack())
    bolt.action("approve_request")(lambda ack: ack())
    api = FastAPI()
    mount_slack_events(api, bolt, SECRET)
    uvicorn.run(api, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# --- the served app -------------------------------------------------------------------------------


def start_serve(
    workdir: Path, fake: FakeProcess, portal_url: str | None
) -> tuple[subprocess.Popen, int, str]:
    """`dbquery serve` with two users and one already-approved request; returns its uuid."""
    (workdir / "dbquery.yml").write_text(
        "pods: [{id: payments, name: Payments}]\n"
        "instances:\n"
        "  - {id: pg-shop, name: Shop, type: postgresql, host: 127.0.0.1, port: 1,"
        " databases: [shop]}\n"
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DBQUERY_"))},
        "DBQUERY_DATABASE_URL": portal_url or f"sqlite:///{workdir / 'portal.sqlite3'}",
        "DBQUERY_CONFIG": str(workdir / "dbquery.yml"),
        "DBQUERY_RESULTS_DIR": str(workdir / "results"),
        "DBQUERY_LOG_LEVEL": "WARNING",
        "SLACK_BOT_TOKEN": TOKEN,
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": fake.api_url,
    }
    decided = prepare_portal(env)
    port = free_port()
    proc = subprocess.Popen(
        [str(VENV_BIN / "dbquery"), "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(port, proc, "dbquery serve")
    return proc, port, decided


def prepare_portal(env: dict[str, str]) -> str:
    """Migrate, add Ann (developer) and Mo (manager), and have Mo approve one of Ann's requests,
    so every benchmark click is a late one (no executions). Returns that request's uuid."""
    from core.requests import Submission
    from core.settings import Settings
    from core.wiring import build_core
    from db.migrate import migrate
    from db.session import make_engine

    migrate(make_engine(env["DBQUERY_DATABASE_URL"]))
    core = build_core(
        Settings(database_url=env["DBQUERY_DATABASE_URL"], config_path=env["DBQUERY_CONFIG"])
    )
    ann = core.users.add(
        email="ann@example.com", name="Ann", role="developer", pod="payments", slack_id="U0ANN"
    )
    mo = core.users.add(
        email="mo@example.com", name="Mo", role="manager", pod="payments", slack_id="U0MO"
    )
    request, _ = core.requests.submit(ann.id, Submission("pg-shop/shop", "query", "SELECT 1"))
    core.requests.approve(request.uuid, mo.id)
    core.engine.dispose()
    return str(request.uuid)


# --- load --------------------------------------------------------------------------------------


def bodies(fake: FakeProcess, decided: str, count: int) -> list[str]:
    """Alternating /dbquery commands and Approve clicks, as Slack would send them."""
    out = []
    for i in range(count):
        if i % 2 == 0:
            out.append(
                urlencode(
                    {
                        "command": "/dbquery",
                        "text": "",
                        "user_id": "U0ANN",
                        "team_id": fake.team_id,
                        "channel_id": "C0GENERAL",
                        "response_url": f"{fake.root}respond/bench-{i}",
                        "trigger_id": f"trigger-{i}",
                    }
                )
            )
        else:
            payload = {
                "type": "block_actions",
                "team": {"id": fake.team_id},
                "user": {"id": "U0MO", "team_id": fake.team_id},
                "api_app_id": "A0BENCH",
                "trigger_id": f"trigger-{i}",
                "container": {"type": "message", "message_ts": "1.1", "channel_id": "DU0MO"},
                "channel": {"id": "DU0MO"},
                "message": {"ts": "1.1", "text": "approval", "blocks": []},
                "response_url": f"{fake.root}respond/bench-{i}",
                "actions": [
                    {
                        "type": "button",
                        "action_id": "approve_request",
                        "block_id": f"decision:{decided}",
                        "value": decided,
                        "action_ts": "1.1",
                    }
                ],
            }
            out.append(urlencode({"payload": json.dumps(payload)}))
    return out


async def send_all(port: int, payloads: list[str]) -> list[float]:
    """Latency (ms) of each request over CONCURRENCY keep-alive connections; all must be 200.

    A minimal HTTP/1.1 client on asyncio streams: a general-purpose async client spends enough
    time per request at this concurrency to dominate the tail it is meant to measure.
    """
    latencies: list[float] = []
    queue = list(reversed(payloads))

    async def connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while queue:
                body = queue.pop()
                started = time.perf_counter()
                writer.write(signed_post(body))
                status, text = await read_response(reader)
                latencies.append((time.perf_counter() - started) * 1000)
                if status != 200:
                    raise RuntimeError(f"port {port} answered {status}: {text}")
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(CONCURRENCY)))
    return latencies


def signed_post(body: str) -> bytes:
    data = body.encode()
    ts = str(int(time.time()))
    head = (
        "POST /slack/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"X-Slack-Request-Timestamp: {ts}\r\nX-Slack-Signature: {sign(body, ts, SECRET)}\r\n"
        f"Content-Length: {len(data)}\r\n\r\n"
    )
    return head.encode() + data


async def read_response(reader: asyncio.StreamReader) -> tuple[int, str]:
    status = int((await reader.readline()).split()[1])
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return status, (await reader.readexactly(length)).decode(errors="replace")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def measure(port: int, fake: FakeProcess, decided: str) -> tuple[float, float]:
    asyncio.run(send_all(port, bodies(fake, decided, WARMUP)))
    latencies = asyncio.run(send_all(port, bodies(fake, decided, REQUESTS)))
    return percentile(latencies, 50), percentile(latencies, 99)


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bare", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--api-url", help=argparse.SUPPRESS)
    parser.add_argument("--fake", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--portal-url",
        help="an empty PostgreSQL database for the portal instead of the default SQLite file",
    )
    args = parser.parse_args()
    if args.fake:
        serve_fake()
        return 0
    if args.bare:
        serve_bare(args.bare, args.api_url)
        return 0

    load_before = os.getloadavg()[0]
    fake = FakeProcess()
    with tempfile.TemporaryDirectory(prefix="dbq-ack-") as tmp:
        served, served_port, decided = start_serve(Path(tmp), fake, args.portal_url)
        bare_port = free_port()
        bare = subprocess.Popen(
            [sys.executable, __file__, "--bare", str(bare_port), "--api-url", fake.api_url],
            cwd=REPO,
        )
        try:
            wait_for_port(bare_port, bare, "the bare Bolt app")
            results: dict[str, list[tuple[float, float]]] = {"serve": [], "bare": []}
            for _ in range(RUNS):
                results["serve"].append(measure(served_port, fake, decided))
                results["bare"].append(measure(bare_port, fake, decided))
            rss = {"serve": peak_rss_mb(served.pid), "bare": peak_rss_mb(bare.pid)}
        finally:
            stop(served)
            stop(bare)
            fake.stop()

    medians = {
        name: (
            statistics.median(p50 for p50, _ in runs),
            statistics.median(p99 for _, p99 in runs),
        )
        for name, runs in results.items()
    }
    portal = "PostgreSQL" if args.portal_url else "SQLite"
    print(
        f"{REQUESTS} signed requests (/dbquery and Approve clicks), concurrency {CONCURRENCY},"
        f" median of {RUNS} runs; {portal} portal database; {os.cpu_count()} CPUs,"
        f" load average {load_before:.1f} before the run"
    )
    print(f"{'app':<16}{'p50 ms':>10}{'p99 ms':>10}{'peak RSS MB':>14}")
    for name, label in (("serve", "dbquery serve"), ("bare", "bare Bolt app")):
        p50, p99 = medians[name]
        print(f"{label:<16}{p50:>10.1f}{p99:>10.1f}{rss[name]:>14.1f}")
    ratio = medians["serve"][1] / medians["bare"][1]
    p99 = medians["serve"][1]
    print(f"p99 ratio serve/bare: {ratio:.2f}x (goal <= {RATIO_GOAL}x)")
    print(f"p99 goal < {P99_GOAL_MS} ms: {'met' if p99 < P99_GOAL_MS else 'NOT met'}")
    print("per run (p50/p99 ms):")
    for name, runs in results.items():
        print(f"  {name}: " + ", ".join(f"{a:.1f}/{b:.1f}" for a, b in runs))
    return 0 if p99 < P99_GOAL_MS and ratio <= RATIO_GOAL else 1


if __name__ == "__main__":
    sys.exit(main())
