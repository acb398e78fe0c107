"""`serve`'s memory stays bounded under the worst result shapes, measured on the real process.

Each case goes through the product as people use it: submitted through the modal, approved
from the DM, executed by `serve`'s worker, answered in the requester's thread. The process's
peak RSS (VmHWM) is reset before each case and read once the answer is posted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.bot.conftest import AUDIT_CHANNEL, TARGET_SECRET_ENV, SlackSender, query_form
from tests.bot.fakeslack import Call, FakeSlack
from tests.bot.serve_process import Served, prepare_portal, serve_env, start_serve

PEAK_RSS_LIMIT_MB = 300
ANN = ("ann@example.com", "developer", "U0ANN")
MO = ("mo@example.com", "manager", "U0MO")
OUTCOME_TIMEOUT_S = 120


def catalogue(path: Path, target_db: str) -> Path:
    """One PostgreSQL target whose caps let three million rows through."""
    raw = {
        "audit_channel": AUDIT_CHANNEL,
        "pods": [{"id": "payments", "name": "Payments"}],
        "instances": [
            {
                "id": "pg-shop",
                "name": "Shop PostgreSQL",
                "type": "postgresql",
                "host": "127.0.0.1",
                "port": 5432,
                "databases": [target_db],
                "secret": f"env:{TARGET_SECRET_ENV}",
                "statement_timeout_s": 90,
                "max_rows": 3_000_000,
            }
        ],
    }
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, fake_slack: FakeSlack, target_database: str
) -> Iterator[Served]:
    workdir = tmp_path_factory.mktemp("memory")
    env = serve_env(
        workdir,
        f"sqlite:///{workdir / 'portal.sqlite3'}",
        target_database,
        fake_slack.api_url,
        DBQUERY_CONFIG=str(catalogue(workdir / "memory.yml", target_database)),
    )
    prepare_portal(env, ANN, MO)
    server = start_serve(env, workdir / "serve.log")
    try:
        yield server
    finally:
        server.stop()


def status_kb(pid: int, field: str) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", status, re.MULTILINE)
    assert match, f"{field} not in /proc/{pid}/status"
    return int(match.group(1))


def reset_peak_rss(pid: int) -> None:
    # Writing 5 resets the process's peak RSS (VmHWM) to its current RSS (proc(5)).
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def approve_and_wait(
    served: Served, fake: FakeSlack, target_db: str, query: str, marker: str
) -> dict:
    """Submit as Ann, approve as Mo; return the outcome reply under Ann's card."""
    sender = SlackSender(served.url, fake)
    text = f"{query} -- {marker}"
    response = sender.submit_view(
        "U0ANN", "submit_request", query_form(f"pg-shop/{target_db}", text)
    )
    assert response.status_code == 200 and response.text == "", response.text

    def for_this(call: Call) -> bool:
        return marker in json.dumps(call.args)

    [approval] = fake.wait_for(
        "chat.postMessage", lambda c: c.args.get("channel") == "DU0MO" and for_this(c)
    )
    uuid = next(
        element["value"]
        for block in approval.args["blocks"]
        if block["type"] == "actions"
        for element in block["elements"]
        if element["action_id"] == "approve_request"
    )
    short_id = uuid[:8]
    clicked, _ = sender.click("U0MO", "approve_request", uuid)
    assert clicked.status_code == 200
    [reply] = fake.wait_for(
        "chat.postMessage",
        lambda c: (
            c.args.get("channel") == "DU0ANN"
            and c.args.get("thread_ts") is not None
            and short_id in json.dumps(c.args)
        ),
        timeout=OUTCOME_TIMEOUT_S,
    )
    return reply.args


def blocks_text(message: dict) -> str:
    return json.dumps(message.get("blocks"), ensure_ascii=False)


@pytest.mark.parametrize(
    ("case", "query", "expected"),
    [
        (
            "3M-rows-through-a-cursor",
            "DECLARE c CURSOR FOR SELECT g, 'row ' || g AS label"
            " FROM generate_series(1, 3000000) g; FETCH ALL c",
            ["completed", "3,000,000 rows", "gzip-compressed CSV"],
        ),
        (
            "huge-cells",
            "SELECT repeat('x', 200000000) AS big FROM generate_series(1, 3)",
            ["completed", "3 rows", "were cut", "gzip-compressed CSV"],
        ),
        (
            "huge-cells-returned-by-a-write",
            "INSERT INTO applied (note) SELECT 'memory case' FROM generate_series(1, 3)"
            " RETURNING id, repeat('x', 200000000) AS big",
            ["completed", "3 rows", "were cut"],
        ),
        (
            "huge-cells-of-a-prepared-statement",
            "PREPARE big AS SELECT repeat('x', 200000000) AS big FROM generate_series(1, 3);"
            " EXECUTE big",
            ["completed", "3 rows", "were cut"],
        ),
        (
            "huge-cells-through-a-cursor",
            "DECLARE c CURSOR FOR SELECT repeat('x', 200000000) AS big"
            " FROM generate_series(1, 3); FETCH ALL c",
            ["completed", "3 rows", "were cut", "gzip-compressed CSV"],
        ),
    ],
)
def test_peak_rss_stays_bounded(
    served: Served,
    fake_slack: FakeSlack,
    target_database: str,
    case: str,
    query: str,
    expected: list[str],
) -> None:
    pid = served.proc.pid
    reset_peak_rss(pid)
    before_mb = status_kb(pid, "VmRSS") / 1024
    reply = approve_and_wait(served, fake_slack, target_database, query, f"memory case {case}")
    peak_mb = status_kb(pid, "VmHWM") / 1024
    print(f"\n{case}: RSS before {before_mb:.0f} MB, peak {peak_mb:.0f} MB")
    text = reply.get("text", "") + blocks_text(reply)
    for phrase in expected:
        assert phrase in text, f"{phrase!r} not in the outcome: {text[:2000]}"
    assert peak_mb < PEAK_RSS_LIMIT_MB, f"{case}: peak RSS {peak_mb:.0f} MB"
    assert served.proc.poll() is None
