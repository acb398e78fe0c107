"""What analysing a submission in a worker process costs, against analysing it in-process.

For a short query (TPC-H Q1), a 30-statement script and a 1 MB script of 15,000 INSERTs, it
times `core.analysis.analyse` in this process (the baseline) and `AnalysisSandbox.analyse`
with warm workers, alternately, RUNS times each, and prints medians, the per-call overhead
and the ratio. It also times a crash input (a 25,000-term sum that overflows pglast's stack)
(workers warm) and the call after it, and the workers' start. Peak RSS: this process and the
largest worker.

    .venv/bin/python benchmarks/analysis_sandbox.py
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.measure import peak_rss_mb  # noqa: E402
from core.analysis import AnalysisError, analyse  # noqa: E402
from core.analysis_sandbox import AnalysisSandbox  # noqa: E402

RUNS = 5
CALLS = {"query": 300, "script": 100, "1 MB script": 1}

QUERY = """SELECT l_returnflag, l_linestatus, sum(l_quantity) AS sum_qty,
    sum(l_extendedprice * (1 - l_discount) * (1 + l_tax)) AS sum_charge,
    avg(l_discount) AS avg_disc, count(*) AS count_order
FROM lineitem WHERE l_shipdate <= date '1998-12-01' - interval '90' day
GROUP BY l_returnflag, l_linestatus ORDER BY l_returnflag, l_linestatus"""
SCRIPT = ";\n".join(
    f"UPDATE orders SET o_comment = 'batch {i}' WHERE o_orderkey = {i}" for i in range(30)
)
BIG_SCRIPT = "".join(f"INSERT INTO t VALUES ({i}, 'row {i}');\n" for i in range(15_000))
CRASH = "SELECT " + "+".join(["1"] * 25_000)
INPUTS = {
    "query": (QUERY, "query"),
    "script": (SCRIPT, "script"),
    "1 MB script": (BIG_SCRIPT, "script"),
}


def per_call_ms(analyser, content: str, submission_type: str, calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        analyser("postgresql", content, submission_type)
    return (time.perf_counter() - started) / calls * 1000


def main() -> None:
    with AnalysisSandbox() as sandbox:
        started = time.perf_counter()
        sandbox.warm_up()
        warm_up_ms = (time.perf_counter() - started) * 1000
        print(f"{'input':<12} {'in-process ms':>14} {'sandbox ms':>11} {'overhead ms':>12} ratio")
        for name, (content, submission_type) in INPUTS.items():
            direct, isolated = [], []
            for _ in range(RUNS):
                calls = CALLS[name]
                direct.append(per_call_ms(analyse, content, submission_type, calls))
                isolated.append(per_call_ms(sandbox.analyse, content, submission_type, calls))
            d, s = statistics.median(direct), statistics.median(isolated)
            print(f"{name:<12} {d:>14.3f} {s:>11.3f} {s - d:>12.3f} {s / d:.2f}")

        crash_ms, after_ms = [], []
        for _ in range(RUNS):
            sandbox.warm_up()
            started = time.perf_counter()
            try:
                sandbox.analyse("postgresql", CRASH)
            except AnalysisError:
                pass
            crash_ms.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            sandbox.analyse("postgresql", QUERY)
            after_ms.append((time.perf_counter() - started) * 1000)
        sandbox.warm_up()
        per_call_ms(sandbox.analyse, BIG_SCRIPT, "script", 2)  # both workers have seen one
        workers = [w for w in list(sandbox._slots.queue) if w is not None]
        worker_rss = max(peak_rss_mb(w.process.pid) for w in workers)
    print(f"starting {sandbox._size} workers (until both answer): {warm_up_ms:.0f} ms")
    print(f"crash input answered in (median): {statistics.median(crash_ms):.1f} ms")
    print(f"next call after a crash (median): {statistics.median(after_ms):.1f} ms")
    print(f"peak RSS: this process {peak_rss_mb():.0f} MB, a worker {worker_rss:.0f} MB")


if __name__ == "__main__":
    main()
