"""The web API's listings on a PostgreSQL portal holding 100,000 requests.

Creates a throwaway portal database on DBQUERY_TEST_PG_URL (default
postgresql://postgres@127.0.0.1:5432/postgres), fills it with 100,000 requests from 200 people
in 10 pods over a year, and serves the web surface (uvicorn, one process) in a child process.
Ten keep-alive connections then call the listing with filters, with a text search (ILIKE, served by
the pg_trgm indexes), with both, and a second page by cursor. Each scenario runs 3 times;
the figures are the medians of the runs' percentiles.

It also prints the auth check's cost: the same client load on GET /healthz (unauthenticated,
one `SELECT 1`) against GET /api/v1/auth/me (authenticated), with the short verification
cache on (the default) and off (every request reads the token's state), and the in-process
cost of AuthService.authenticate() per request, as configured by default (from 1 and from 10
threads) and with the cache off.

"alone" is the same call from a single client: the server's own time per call, without
queueing behind the other nine.

Goals: listing p99 <= 50 ms at concurrency 10; the auth check adds <= 2 ms at p99.

    .venv/bin/python benchmarks/api.py
"""

from __future__ import annotations

import asyncio
import multiprocessing
import re
import statistics
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import httpx
import psycopg
import uvloop

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.measure import create_database, drop_database, peak_rss_mb  # noqa: E402
from benchmarks.measure import pg_url as url_for  # noqa: E402

REQUESTS = 100_000
PEOPLE = 200
PODS = 10
CONCURRENCY = 10
CALLS = 1_000  # per run and scenario
RUNS = 3
LISTING_P99_GOAL_MS = 50
AUTH_P99_GOAL_MS = 2
SECRET = "benchmark-secret-" + "s" * 40
WORDS = (
    "refund audit invoice churn fraud backfill migration report customer ledger payout discount"
    " shipping tax export cleanup"
).split()


def catalogue():
    from core.catalogue import Catalogue

    return Catalogue.model_validate(
        {
            "pods": [{"id": f"pod{i}", "name": f"Pod {i}"} for i in range(PODS)],
            "instances": [
                {
                    "id": f"pg-{i}",
                    "name": f"Instance {i}",
                    "type": "postgresql",
                    "host": "127.0.0.1",
                    "port": 5432,
                    "databases": ["app"],
                }
                for i in range(5)
            ],
        }
    )


def fill(portal_url: str) -> None:
    """People, then 100,000 requests generated inside PostgreSQL (statuses, texts, dates)."""
    with psycopg.connect(portal_url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute(
            "INSERT INTO users (id, email, name, role, pod_id, is_active, created_at, updated_at)"
            " SELECT gen_random_uuid(), 'person' || i || '@example.com', 'Person ' || i,"
            " CASE WHEN i = 0 THEN 'admin' WHEN i % 20 = 1 THEN 'manager' ELSE 'developer' END,"
            f" CASE WHEN i = 0 THEN NULL ELSE 'pod' || (i % {PODS}) END, true, now(), now()"
            f" FROM generate_series(0, {PEOPLE - 1}) AS i"
        )
        words = "ARRAY[" + ",".join(f"'{w}'" for w in WORDS) + "]"
        conn.execute(
            f"""
            INSERT INTO query_requests (uuid, user_id, database_type, instance_id, instance_name,
                database_name, submission_type, query_content, script_filename, script_content,
                comments, pod_id, pod_name, status, approver_email, approved_at, rejected_at,
                execution_started_at, execution_completed_at, created_at, updated_at)
            SELECT gen_random_uuid(), u.id, 'postgresql', 'pg-' || (g % 5), 'Instance ' || (g % 5),
                'app', CASE WHEN g % 10 = 0 THEN 'script' ELSE 'query' END,
                CASE WHEN g % 10 = 0 THEN NULL ELSE
                    'SELECT id, total FROM orders_' || (g % 97) || ' WHERE customer_id = ' || g
                    || ' AND note LIKE ''%' || ({words})[1 + g % 16] || '%''' END,
                CASE WHEN g % 10 = 0 THEN ({words})[1 + (g / 7) % 16] || '_' || g || '.sql' END,
                CASE WHEN g % 10 = 0 THEN 'UPDATE orders SET flag = true WHERE id = ' || g END,
                ({words})[1 + (g / 3) % 16] || ' for ticket OPS-' || g,
                u.pod_id, 'Pod', s.status, 'person1@example.com',
                CASE WHEN s.status NOT IN ('pending', 'rejected') THEN c.at + interval '20 min' END,
                CASE WHEN s.status = 'rejected' THEN c.at + interval '20 min' END,
                CASE WHEN s.status IN ('executing', 'completed', 'failed')
                    THEN c.at + interval '21 min' END,
                CASE WHEN s.status IN ('completed', 'failed') THEN c.at + interval '22 min' END,
                c.at, c.at
            FROM generate_series(1, {REQUESTS}) AS g
            JOIN LATERAL (SELECT id, pod_id FROM users WHERE pod_id IS NOT NULL
                          ORDER BY email OFFSET (g % {PEOPLE - 1}) LIMIT 1) u ON true
            CROSS JOIN LATERAL (SELECT (ARRAY['completed','completed','completed','completed',
                'rejected','failed','pending','approved'])[1 + g % 8] AS status) s
            CROSS JOIN LATERAL (SELECT now() - (g * interval '315 seconds') AS at) c
            """
        )
        conn.execute("ANALYZE")


def serve(portal_url: str, port: int, verify_cache_s: float) -> None:
    """The child process: the web surface alone, on uvicorn."""
    import gc
    import logging

    import uvicorn

    from core.auth import AuthService
    from core.settings import Settings
    from core.wiring import build_core
    from web import create_app

    logging.disable(logging.WARNING)
    settings = Settings(
        DBQUERY_DATABASE_URL=portal_url,
        DBQUERY_JWT_SECRET=SECRET,
        DBQUERY_PUBLIC_URL=f"http://127.0.0.1:{port}",
    )
    core = build_core(settings, catalogue())
    auth = AuthService(
        core.sessions, SECRET.encode(), core.events, settings.public_url,
        verify_cache_s=verify_cache_s,
    )  # fmt: skip
    app = create_app(core, settings, auth=auth)
    gc.freeze()  # as `dbquery serve` does once it is built
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def start_server(portal_url: str, verify_cache_s: float):
    from tests.conftest import free_port

    port = free_port()
    context = multiprocessing.get_context("spawn")
    process = context.Process(target=serve, args=(portal_url, port, verify_cache_s), daemon=True)
    process.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                return process, base
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("the web server did not start")


def tokens(portal_url: str) -> dict[str, str]:
    """Access tokens for an admin and a pod manager, issued as a sign-in would."""
    from core.auth import AuthService
    from core.events import EventBus
    from db.session import make_engine, make_session_factory

    sessions = make_session_factory(make_engine(portal_url))
    auth = AuthService(sessions, SECRET.encode(), EventBus(), "http://bench")
    from core.records import UserRecord
    from db import repository as repo

    with sessions() as session:
        admin = UserRecord.of(repo.user_by_email(session, "person0@example.com"))
        manager = UserRecord.of(repo.user_by_email(session, "person21@example.com"))
    result = {"admin": auth.issue(admin).access, "manager": auth.issue(manager).access}
    sessions.engine.dispose()
    return result


@dataclass(frozen=True)
class Get:
    """One GET the load repeats: a path with its query and the headers it sends."""

    url: str
    params: dict[str, str | int] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    def request_bytes(self) -> tuple[str, int, bytes]:
        parts = urlsplit(self.url)
        target = parts.path + ("?" + urlencode(self.params) if self.params else "")
        lines = [f"GET {target} HTTP/1.1", f"Host: {parts.netloc}"]
        lines += [f"{k}: {v}" for k, v in self.headers.items()]
        return parts.hostname or "", parts.port or 80, ("\r\n".join(lines) + "\r\n\r\n").encode()


def load(get: Get, calls: int = CALLS, clients: int = CONCURRENCY) -> list[float]:
    """`calls` GETs from `clients` keep-alive connections; latencies in ms.

    A bare HTTP/1.1 client on uvloop: on a small machine a heavier one would take the CPU the
    server needs, and measure itself.
    """
    return uvloop.run(_load(get, calls, clients))


async def _load(get: Get, calls: int, clients: int) -> list[float]:
    host, port, request = get.request_bytes()
    latencies: list[float] = []

    async def client() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for number in range(10 + calls // clients):
                began = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
                body = await reader.readexactly(length)
                if not head.startswith(b"HTTP/1.1 200"):
                    raise RuntimeError(f"{head.splitlines()[0]!r}: {body[:300]!r}")
                if number >= 10:  # the first calls warm the connection
                    latencies.append((time.perf_counter() - began) * 1000)
        finally:
            writer.close()

    await asyncio.gather(*(client() for _ in range(clients)))
    return latencies


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def runs(get: Get, count: int = RUNS) -> tuple[float, float, float]:
    """Median over runs of (p50, p95, p99)."""
    figures = [load(get) for _ in range(count)]
    return tuple(statistics.median(percentile(f, q) for f in figures) for q in (0.5, 0.95, 0.99))  # type: ignore[return-value]


def main() -> int:
    name = create_database("dbq_bench_api")
    portal_url = url_for(name, "psycopg")
    process = None
    try:
        from db.migrate import migrate
        from db.session import make_engine

        engine = make_engine(portal_url)
        migrate(engine)
        engine.dispose()
        began = time.perf_counter()
        fill(portal_url)
        print(f"portal: {REQUESTS:,} requests, {PEOPLE} people, {PODS} pods "
              f"(filled in {time.perf_counter() - began:.1f} s)")  # fmt: skip
        bearer = {k: {"Authorization": f"Bearer {v}"} for k, v in tokens(portal_url).items()}

        process, base = start_server(portal_url, verify_cache_s=1.0)
        first = httpx.get(
            base + "/api/v1/requests", params={"limit": 50}, headers=bearer["admin"]
        ).json()
        cursor = first["next_cursor"]
        api = base + "/api/v1/requests"
        admin, manager = bearer["admin"], bearer["manager"]
        scenarios = {
            "newest 50, everything (admin)": Get(api, {"limit": 50}, admin),
            "filters: status+pod+instance+type (admin)": Get(
                api,
                {
                    "status": "completed",
                    "pod": "pod3",
                    "instance": "pg-2",
                    "type": "query",
                    "limit": 50,
                },
                admin,
            ),  # fmt: skip
            "a pod manager's history, status filter": Get(
                api, {"status": "failed", "limit": 50}, manager
            ),
            "text search 'ledger' (admin)": Get(api, {"q": "ledger", "limit": 50}, admin),
            "text search 'OPS-4242' (rare)": Get(api, {"q": "OPS-4242", "limit": 50}, admin),
            "search + filters + date range": Get(
                api,
                {
                    "q": "refund",
                    "status": "completed",
                    "database_type": "postgresql",
                    "from": "2000-01-01T00:00:00Z",
                    "limit": 50,
                },
                admin,
            ),  # fmt: skip
            "second page by cursor": Get(api, {"limit": 50, "cursor": cursor}, admin),
        }
        print(f"\nlisting at concurrency {CONCURRENCY}, {CALLS} calls per run, medians of {RUNS}:")
        print(f"  {'scenario':<44} {'p50':>8} {'p95':>8} {'p99':>8} {'alone p50':>10}")
        worst = 0.0
        for label, call in scenarios.items():
            p50, p95, p99 = runs(call)
            alone = alone_p50(call)
            worst = max(worst, p99)
            print(f"  {label:<44} {p50:7.1f}ms {p95:7.1f}ms {p99:7.1f}ms {alone:9.1f}ms")
        verdict = "meets" if worst <= LISTING_P99_GOAL_MS else "MISSES"
        print(f"  worst p99 {worst:.1f} ms: {verdict} the goal of {LISTING_P99_GOAL_MS} ms")

        print(f"\nauth check at concurrency {CONCURRENCY} (medians of {RUNS}), and alone:")
        health_call = Get(base + "/healthz")
        me_call = Get(base + "/api/v1/auth/me", headers=admin)
        health, health_alone = runs(health_call), alone_p50(health_call)
        cached, cached_alone = runs(me_call), alone_p50(me_call)
        server_rss = peak_rss_mb(process.pid)
        process.kill()
        process.join()
        process, base = start_server(portal_url, verify_cache_s=0.0)
        me_call = Get(base + "/api/v1/auth/me", headers=admin)
        uncached, uncached_alone = runs(me_call), alone_p50(me_call)
        print(f"  {'endpoint':<44} {'p50':>8} {'p95':>8} {'p99':>8} {'alone p50':>10}")
        for label, figures, alone in (
            ("GET /healthz (no auth, SELECT 1)", health, health_alone),
            ("GET /api/v1/auth/me (cache on, default)", cached, cached_alone),
            ("GET /api/v1/auth/me (cache off)", uncached, uncached_alone),
        ):
            print(
                f"  {label:<44} {figures[0]:7.2f}ms {figures[1]:7.2f}ms {figures[2]:7.2f}ms"
                f" {alone:9.2f}ms"
            )
        print(f"  auth overhead vs /healthz, alone p50: cache on {cached_alone - health_alone:+.2f}"
              f" ms, cache off {uncached_alone - health_alone:+.2f} ms")  # fmt: skip
        token = bearer["admin"]["Authorization"][7:]
        for cache_s, threads in ((1.0, 1), (1.0, CONCURRENCY), (0.0, 1)):
            p50, _p95, p99 = authenticate_timings(portal_url, token, threads, cache_s)
            if cache_s:
                verdict = "meets" if p99 <= AUTH_P99_GOAL_MS else "MISSES"
                label = f"default {cache_s:.0f} s cache"
                tail = f" ({verdict} the goal of {AUTH_P99_GOAL_MS} ms)"
            else:
                label, tail = "cache off", " (every check reads the portal)"
            print(
                f"  AuthService.authenticate(), {label}, {threads:>2} thread(s): p50 {p50:.3f}"
                f" ms, p99 {p99:.3f} ms{tail}"
            )
        print(f"\nserver peak RSS {server_rss:.0f} MB; benchmark peak RSS {peak_rss_mb():.0f} MB")
        return 0
    finally:
        if process is not None:
            process.kill()
            process.join()
        drop_database(name)


def alone_p50(get: Get) -> float:
    return percentile(load(get, calls=200, clients=1), 0.5)


def authenticate_timings(
    portal_url: str, token: str, threads: int, cache_s: float
) -> tuple[float, float, float]:
    """AuthService.authenticate() timed in-process, as each authenticated request calls it."""
    from core.auth import AuthService
    from core.events import EventBus
    from db.session import make_engine, make_session_factory

    sessions = make_session_factory(make_engine(portal_url))
    auth = AuthService(
        sessions, SECRET.encode(), EventBus(), "http://bench", verify_cache_s=cache_s
    )
    figures = [timed_in_threads(lambda: auth.authenticate(token), threads) for _ in range(RUNS)]
    sessions.engine.dispose()
    return tuple(statistics.median(percentile(f, q) for f in figures) for q in (0.5, 0.95, 0.99))  # type: ignore[return-value]


def timed_in_threads(call: Callable[[], object], threads: int) -> list[float]:
    """CALLS calls of `call` from `threads` threads; latencies in ms."""
    latencies: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        mine = []
        for _ in range(CALLS // threads):
            began = time.perf_counter()
            call()
            mine.append((time.perf_counter() - began) * 1000)
        with lock:
            latencies.extend(mine)

    with ThreadPoolExecutor(threads) as pool:
        for future in [pool.submit(worker) for _ in range(threads)]:
            future.result()
    return latencies


if __name__ == "__main__":
    sys.exit(main())
