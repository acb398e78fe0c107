"""Submit-time analysis speed and memory of MongoDB shell text against a JSON parse.

Builds one `insertMany([...])` statement of N documents (`--docs N`, default 20,000) in the
shell syntax people paste (unquoted keys, ISODate(), NumberLong()), and the same documents as
Extended JSON. Times the analysis (`core.analysis.analyse("mongodb", ...)`: tokenize, parse,
build BSON values, classify) against `bson.json_util.loads` of the Extended JSON, the closest
thing the driver offers (its tokenizer is C, so the ratio shows what the hand-written parser
costs, not a goal to beat). Each run happens in a fresh child process that reports its own
time and peak RSS (VmHWM); medians of 3 runs.

    .venv/bin/python benchmarks/parse_mongo.py [--docs N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.measure import peak_rss_mb, print_child_figures  # noqa: E402

RUNS = 3


def shell_text(docs: int) -> str:
    items = ", ".join(
        f"{{n: {i}, name: 'item {i}', tags: ['a', 'b'], at: ISODate('2024-05-01T12:00:00Z'), "
        f"qty: NumberLong({i * 7}), nested: {{x: {i % 10}, ok: true}}}}"
        for i in range(docs)
    )
    return f"db.items.insertMany([{items}])"


def json_text(docs: int) -> str:
    items = ", ".join(
        f'{{"n": {i}, "name": "item {i}", "tags": ["a", "b"], '
        '"at": {"$date": "2024-05-01T12:00:00Z"}, '
        f'"qty": {{"$numberLong": "{i * 7}"}}, "nested": {{"x": {i % 10}, "ok": true}}}}'
        for i in range(docs)
    )
    return f"[{items}]"


def child(kind: str, docs: int) -> None:
    text = shell_text(docs) if kind == "analysis" else json_text(docs)
    baseline_mb = peak_rss_mb()
    started = time.perf_counter()
    if kind == "analysis":
        from core.analysis import analyse

        analyse("mongodb", text, "query")
    else:
        from bson import json_util

        json_util.loads(text)
    print_child_figures(time.perf_counter() - started, baseline_mb)


def run_child(kind: str, docs: int) -> dict:
    import json

    done = subprocess.run(
        [sys.executable, __file__, "--child", kind, "--docs", str(docs)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(docs: int) -> None:
    size = len(shell_text(docs))
    results = {kind: [run_child(kind, docs) for _ in range(RUNS)] for kind in ("analysis", "json")}
    print(f"\n{docs:,} documents, {size / 1e6:.1f} MB of shell text (median of {RUNS})")
    medians = {
        kind: statistics.median(r["seconds"] for r in runs) for kind, runs in results.items()
    }
    for kind, label in (("analysis", "shell analysis"), ("json", "json_util.loads")):
        peak = max(r["peak_rss_mb"] for r in results[kind])
        baseline = max(r["baseline_rss_mb"] for r in results[kind])
        print(
            f"  {label:<16} {medians[kind]:7.2f} s  {size / medians[kind] / 1e6:6.2f} MB/s  "
            f"peak RSS {peak:6.1f} MB (+{peak - baseline:.1f} MB)"
        )
    print(f"  ratio: analysis / json_util.loads = {medians['analysis'] / medians['json']:.1f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=20_000)
    parser.add_argument("--child", choices=("analysis", "json"))
    args = parser.parse_args()
    if args.child:
        child(args.child, args.docs)
    else:
        main(args.docs)
