"""What a cost estimate adds to a submission: core.estimates against its baseline.

Creates a throwaway database on DBQUERY_TEST_PG_URL (default
postgresql://postgres@127.0.0.1:5432/postgres) with a 200,000-row table (ANALYZEd), then times,
alternately, the estimate of each query (a fresh connection, a READ ONLY transaction, EXPLAIN
and the table-size look-ups, as at submit) and the baseline: a fresh connection that runs
`SELECT 1`, the least any estimate could cost. Medians of RUNS runs; the ratio is to the
baseline; peak RSS is this process's.

Goal: a median estimate within 3 x the baseline and under 50 ms, well inside the one second
submit waits for it.

    .venv/bin/python benchmarks/estimate.py
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import psycopg

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.measure import create_database, drop_database, peak_rss_mb  # noqa: E402
from benchmarks.measure import pg_url as url_for  # noqa: E402
from core.estimates import estimate  # noqa: E402
from core.executors.base import Connection  # noqa: E402

ROWS = 200_000
RUNS = 21
RATIO_GOAL = 3.0
MEDIAN_GOAL_MS = 50
QUERIES = (
    "SELECT * FROM orders WHERE id = 42",
    "UPDATE orders SET total = 0 WHERE status = 'stale'",
    "SELECT o.status, count(*) FROM orders o JOIN orders p ON p.id = o.id + 1 GROUP BY o.status",
)


def baseline(conn: Connection) -> None:
    with psycopg.connect(
        host=conn.host, port=conn.port, dbname=conn.database, user=conn.username
    ) as pg:
        pg.execute("SELECT 1").fetchone()


def timed_ms(call, *args) -> float:
    started = time.perf_counter()
    call(*args)
    return (time.perf_counter() - started) * 1000


def main() -> int:
    name = create_database()
    try:
        with psycopg.connect(url_for(name), autocommit=True) as setup:
            setup.execute("CREATE TABLE orders (id int PRIMARY KEY, status text, total numeric)")
            setup.execute(
                "INSERT INTO orders SELECT g, CASE WHEN g %% 16 = 0 THEN 'stale' ELSE 'ok' END,"
                " g FROM generate_series(1, %s) g",
                (ROWS,),
            )
            setup.execute("ANALYZE orders")
        params = psycopg.conninfo.conninfo_to_dict(url_for(name))
        conn = Connection(
            host=params.get("host", "127.0.0.1"),
            port=int(params.get("port", 5432)),
            database=name,
            username=params.get("user"),
        )
        ok = True
        for query in QUERIES:
            base, est = [], []
            for _ in range(RUNS):
                base.append(timed_ms(baseline, conn))
                est.append(timed_ms(estimate, conn, "postgresql", query))
            summary = estimate(conn, "postgresql", query).summary()
            ratio = statistics.median(est) / statistics.median(base)
            print(f"{query}\n  -> {summary}")
            print(
                f"  estimate median {statistics.median(est):.1f} ms (max {max(est):.1f}),"
                f" baseline median {statistics.median(base):.1f} ms, ratio {ratio:.2f}"
            )
            ok = ok and ratio <= RATIO_GOAL and statistics.median(est) <= MEDIAN_GOAL_MS
        print(f"peak RSS {peak_rss_mb():.0f} MB; goal met: {ok}")
        return 0 if ok else 1
    finally:
        drop_database(name)


if __name__ == "__main__":
    raise SystemExit(main())
