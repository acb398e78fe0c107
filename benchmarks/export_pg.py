"""Export speed and memory of the PostgreSQL executor against psql's \\copy.

Creates a throwaway database with a 1,000,000-row table on DBQUERY_TEST_PG_URL (default
postgresql://postgres@127.0.0.1:5432/postgres), then for 100k and 1M rows times
execute_postgres(SELECT ... LIMIT n) against `psql -c "\\copy (SELECT ...) TO file CSV HEADER"`
(medians of 3 runs each): as a query and as a script with the file kept plain, as psql writes
it, and as a query with the product's default compression (gzip past 20 MB), whose compression
ratio is printed too. Each executor run happens in a child process that reports its own peak
RSS (VmHWM). The database is dropped at the end.

Goals: executor time <= 1.5 x psql's (plain file), peak RSS flat and < 150 MB.

    .venv/bin/python benchmarks/export_pg.py
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
from psycopg.conninfo import conninfo_to_dict

TABLE_ROWS = 1_000_000
SIZES = (100_000, 1_000_000)
RUNS = 3
RATIO_GOAL = 1.5
RSS_GOAL_MB = 150
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.measure import create_database, drop_database, peak_rss_mb  # noqa: E402
from benchmarks.measure import pg_url as url_for  # noqa: E402

# label, submission type, whether the file is compressed past the default threshold
VARIANTS = (
    ("query", "query", False),
    ("script of 2", "script", False),
    ("query, gzip >20 MB", "query", True),
)


def select_sql(rows: int) -> str:
    return f"SELECT id, name, created_at, amount FROM items ORDER BY id LIMIT {rows}"


def create_items_database() -> str:
    name = create_database()
    with psycopg.connect(url_for(name), autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL,"
            " created_at timestamptz NOT NULL, amount numeric(12, 2))"
        )
        conn.execute(
            "INSERT INTO items SELECT g, 'item number ' || g,"
            " timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second',"
            " CASE WHEN g % 10 = 0 THEN NULL ELSE (g % 100000) / 100.0 END"
            f" FROM generate_series(1, {TABLE_ROWS}) g"
        )
        conn.execute("VACUUM ANALYZE items")
    return name


def time_psql(database: str, rows: int, out_dir: Path) -> float:
    target = out_dir / "psql.csv"
    command = f"\\copy ({select_sql(rows)}) TO '{target}' CSV HEADER"
    started = time.perf_counter()
    subprocess.run(["psql", "-X", "-q", "-d", url_for(database), "-c", command], check=True)
    return time.perf_counter() - started


def time_executor(
    database: str, rows: int, out_dir: Path, submission_type: str, compress: bool
) -> dict:
    """Run one export in a fresh child process; it reports seconds, peak RSS and file sizes."""
    mode = f"{submission_type}-{'gzip' if compress else 'plain'}"
    completed = subprocess.run(
        [sys.executable, __file__, "--child", database, str(rows), str(out_dir), mode],
        check=True,
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    return json.loads(completed.stdout)


def child(database: str, rows: int, out_dir: Path, mode: str) -> None:
    sys.path.insert(0, str(REPO))
    from core.executors.base import Connection, Job
    from core.executors.postgres import execute_postgres
    from core.executors.results import ResultLimits

    submission_type, compression = mode.split("-")
    limits = ResultLimits() if compression == "gzip" else ResultLimits(compress_over_bytes=2**62)

    params = conninfo_to_dict(url_for(database))
    conn = Connection(
        host=str(params.get("host", "127.0.0.1")),
        port=int(params.get("port", 5432)),
        database=database,
        username=params.get("user"),
        password=params.get("password"),
        statement_timeout_s=600,
        max_rows=rows,
    )
    content = select_sql(rows)
    if submission_type == "script":
        # The same SELECT behind a SET: the script path, statement by statement.
        content = f"SET LOCAL work_mem = '16MB';\n{content};"
    job = Job(
        request_uuid=str(uuid.uuid4()),
        submission_type=submission_type,
        content=content,
        out_dir=out_dir,
        read_only=True,
        limits=limits,
    )
    baseline_mb = peak_rss_mb()
    started = time.perf_counter()
    result = execute_postgres(conn, job)
    seconds = time.perf_counter() - started
    assert result.row_count == rows and not result.truncated, result.summary()
    figures = {
        "seconds": seconds,
        "peak_rss_mb": peak_rss_mb(),
        "baseline_rss_mb": baseline_mb,
        "content_bytes": result.content_bytes,
        "file_bytes": result.file_bytes,
    }
    print(json.dumps(figures))


def main() -> None:
    print(f"creating a {TABLE_ROWS:,}-row table ...", flush=True)
    database = create_items_database()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            out_dir = Path(tmp)
            for rows in SIZES:
                report(database, rows, out_dir)
    finally:
        drop_database(database)


def report(database: str, rows: int, out_dir: Path) -> None:
    psql_s = statistics.median(time_psql(database, rows, out_dir) for _ in range(RUNS))
    print(f"\n{rows:,} rows (median of {RUNS})")
    print(f"  psql \\copy                 {psql_s:7.3f} s")
    for label, submission_type, compress in VARIANTS:
        runs = [
            time_executor(database, rows, out_dir, submission_type, compress) for _ in range(RUNS)
        ]
        seconds = statistics.median(r["seconds"] for r in runs)
        peak = max(r["peak_rss_mb"] for r in runs)
        baseline = max(r["baseline_rss_mb"] for r in runs)
        ratio = seconds / psql_s
        verdict = "ok" if ratio <= RATIO_GOAL and peak < RSS_GOAL_MB else "MISSED"
        if compress:
            verdict = "ok" if peak < RSS_GOAL_MB else "MISSED"
        print(
            f"  executor {label:<19} {seconds:7.3f} s  ratio {ratio:4.2f}x"
            f"{'' if compress else f' (goal <= {RATIO_GOAL}x)'}"
            f"  peak RSS {peak:6.1f} MB (after imports {baseline:5.1f} MB; goal < {RSS_GOAL_MB})"
            f"  {verdict}"
        )
        content, file = runs[0]["content_bytes"], runs[0]["file_bytes"]
        if compress and file != content:
            print(
                f"    file {file / 2**20:.1f} MB for {content / 2**20:.1f} MB of CSV:"
                f" compression ratio {content / file:.1f}x"
            )


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]), Path(sys.argv[4]), sys.argv[5])
    else:
        main()
