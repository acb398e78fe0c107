"""Export speed and memory of the MongoDB executor against a plain pymongo loop.

Starts its own nx-27017 (in-memory, on a free port), inserts 200,000 documents (`--docs N`
to change), then times `execute_mongo(db.items.find())` against the shortest pymongo code
that does the same job: iterate `find()` and write one `bson.json_util` line per document.
The plain loop runs twice: with pymongo's default batches, and with the executor's batch
size, which is the like-for-like baseline of the goal (nx-27017 pages results with a cost
that grows with the offset, so the batch size alone moves its time a lot). Each run happens
in a fresh child process that reports its own time and peak RSS (VmHWM); medians of 3 runs.

Goals: executor time <= 1.3 x the plain loop's with the same batch size; peak RSS flat (it
must not grow with the number of documents, since the rows stream to the file).

    .venv/bin/python benchmarks/export_mongo.py [--docs N]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from pymongo import MongoClient

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.measure import peak_rss_mb, print_child_figures  # noqa: E402

DATABASE = "bench"
COLLECTION = "items"
RUNS = 3
RATIO_GOAL = 1.3
KINDS = ("plain", "plain-batched", "executor")
INSERT_BATCH = 10_000


def start_server(work_dir: Path) -> tuple[subprocess.Popen, int]:
    # Imported here: the measuring children must not carry pytest in their memory figures.
    from tests.conftest import start_nx27017

    return start_nx27017(work_dir)


def insert_documents(port: int, count: int) -> None:
    start = dt.datetime(2024, 1, 1)
    with MongoClient("127.0.0.1", port) as client:
        items = client[DATABASE][COLLECTION]
        for first in range(0, count, INSERT_BATCH):
            items.insert_many(
                [
                    {
                        "n": n,
                        "name": f"item number {n}",
                        "price": (n % 10_000) / 100,
                        "created_at": start + dt.timedelta(seconds=n),
                        "tags": ["bench", f"t{n % 7}"],
                        "supplier": {"id": n % 97, "country": "NO"},
                    }
                    for n in range(first, min(first + INSERT_BATCH, count))
                ],
                ordered=False,
            )


def run_child(kind: str, port: int, docs: int, out_dir: Path) -> dict:
    completed = subprocess.run(
        [sys.executable, __file__, "--child", kind, "--port", str(port), "--docs", str(docs),
         "--out", str(out_dir)],
        check=True,
        capture_output=True,
        text=True,
        cwd=REPO,
    )  # fmt: skip
    return json.loads(completed.stdout)


def child(kind: str, port: int, docs: int, out_dir: Path) -> None:
    sys.path.insert(0, str(REPO))
    from bson import json_util

    from core.executors.base import Connection, Job
    from core.executors.mongo import CURSOR_BATCH_SIZE, execute_mongo

    baseline_mb = peak_rss_mb()
    started = time.perf_counter()
    if kind == "executor":
        conn = Connection("127.0.0.1", port, DATABASE, statement_timeout_s=600, max_rows=docs + 1)
        job = Job(str(uuid.uuid4()), "query", f"db.{COLLECTION}.find({{}})", out_dir)
        result = execute_mongo(conn, job)
        rows = result.row_count
        assert not result.truncated
    else:
        rows = 0
        batches = {"batch_size": CURSOR_BATCH_SIZE} if kind == "plain-batched" else {}
        with MongoClient("127.0.0.1", port) as client:
            with (out_dir / "plain.jsonl").open("w", encoding="utf-8") as out:
                for document in client[DATABASE][COLLECTION].find({}, **batches):
                    out.write(
                        json_util.dumps(document, json_options=json_util.RELAXED_JSON_OPTIONS)
                    )
                    out.write("\n")
                    rows += 1
    seconds = time.perf_counter() - started
    assert rows == docs, (rows, docs)
    print_child_figures(seconds, baseline_mb)


def main(docs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work_dir = Path(tmp)
        server, port = start_server(work_dir)
        try:
            started = time.perf_counter()
            insert_documents(port, docs)
            print(
                f"inserted {docs:,} documents in {time.perf_counter() - started:.1f} s", flush=True
            )
            results: dict[str, list[dict]] = {kind: [] for kind in KINDS}
            # Alternate the two so neither benefits from a warmer server.
            for _ in range(RUNS):
                for kind in results:
                    results[kind].append(run_child(kind, port, docs, work_dir))
        finally:
            server.terminate()
            server.wait(timeout=10)
    report(docs, results)


def report(docs: int, results: dict[str, list[dict]]) -> None:
    medians = {
        kind: statistics.median(r["seconds"] for r in runs) for kind, runs in results.items()
    }
    print(f"\n{docs:,} documents, find() to JSON lines (median of {RUNS})")
    for label, kind in (
        ("plain loop, default batches", "plain"),
        ("plain loop, same batches", "plain-batched"),
        ("execute_mongo", "executor"),
    ):
        seconds = medians[kind]
        peak = max(r["peak_rss_mb"] for r in results[kind])
        baseline = max(r["baseline_rss_mb"] for r in results[kind])
        print(
            f"  {label:<28} {seconds:7.3f} s  {docs / seconds:9,.0f} docs/s"
            f"  peak RSS {peak:6.1f} MB (after imports {baseline:5.1f} MB)"
        )
    ratio = medians["executor"] / medians["plain-batched"]
    verdict = "ok" if ratio <= RATIO_GOAL else "MISSED"
    print(
        f"  executor / plain loop, same batches:    {ratio:4.2f}x (goal <= {RATIO_GOAL}x) {verdict}"
    )
    default_ratio = medians["executor"] / medians["plain"]
    print(f"  executor / plain loop, default batches: {default_ratio:4.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=200_000, help="documents to insert and export")
    parser.add_argument("--child", choices=KINDS, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        child(arguments.child, arguments.port, arguments.docs, arguments.out)
    else:
        main(arguments.docs)
