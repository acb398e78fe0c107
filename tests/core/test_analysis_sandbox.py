"""Analysis in worker processes: crashes, overruns and oversized text become answers."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.analysis import AnalysisError, analyse
from core.analysis_sandbox import (
    MAX_BRACKET_DEPTH,
    MAX_CONTENT_CHARS,
    AnalysisSandbox,
    analyse_isolated,
    check_shape,
)

ANSWER_WITHIN_S = 5

# The inputs that used to kill or wedge the serving process, with the start of the answer each
# gets now: the sandbox's own for what reaches a parser's limits, the MongoDB parser's for the
# bounds it checks itself.
TOO_COMPLEX = "too complex to check: "
CRASH_INPUTS = [
    pytest.param(
        "postgresql", "SELECT " + "+".join(["1"] * 25_000), TOO_COMPLEX, id="pg-25000-terms"
    ),
    pytest.param(
        "postgresql", "SELECT " + "+".join(["1"] * 2_000), TOO_COMPLEX, id="pg-2000-terms"
    ),
    pytest.param(
        "postgresql", "SELECT " + "(" * 5_000 + "1" + ")" * 5_000, TOO_COMPLEX, id="pg-parens"
    ),
    pytest.param(
        "mongodb",
        "db.c.find({a: " + "NumberInt(" * 10_000 + "1" + ")" * 10_000 + "})",
        TOO_COMPLEX,
        id="mongo-nested-numberint",
    ),
    pytest.param(
        "mongodb",
        "db.c.find({a: " + "9" * 5_000 + "})",
        "number too long",
        id="mongo-5000-digits",
    ),
    pytest.param(
        "mongodb",
        "db.c.find({a: NumberDecimal('" + "9" * 100_000 + "')})",
        "expected a decimal number",
        id="mongo-decimal",
    ),
]


@pytest.fixture(scope="module")
def sandbox() -> Iterator[AnalysisSandbox]:
    with AnalysisSandbox() as pool:
        yield pool


def worker_pids(pool: AnalysisSandbox) -> list[int]:
    """The processes currently serving the pool (taken out and put back)."""
    taken = [pool._slots.get(timeout=5) for _ in range(pool._size)]
    for worker in taken:
        pool._slots.put(worker)
    return [w.process.pid for w in taken if w is not None and w.alive()]


def test_answers_match_the_in_process_analysis(sandbox: AnalysisSandbox) -> None:
    sql = "SELECT o.id FROM orders o JOIN items i USING (id); DELETE FROM t WHERE a = 1"
    assert sandbox.analyse("postgresql", sql, "script") == analyse("postgresql", sql, "script")
    js = "db.orders.find({a: 1})"
    assert sandbox.analyse("mongodb", js) == analyse("mongodb", js)


def test_refusals_keep_their_message_and_position(sandbox: AnalysisSandbox) -> None:
    with pytest.raises(AnalysisError) as caught:
        sandbox.analyse("postgresql", "SELECT 1;\nSELEC 2", "script")
    assert (caught.value.message, caught.value.line, caught.value.column) == (
        'syntax error at or near "SELEC"',
        2,
        1,
    )


@pytest.mark.parametrize(("database_type", "content", "answer"), CRASH_INPUTS)
def test_crash_inputs_are_refused_in_time_and_the_sandbox_recovers(
    sandbox: AnalysisSandbox, database_type: str, content: str, answer: str
) -> None:
    started = time.monotonic()
    with pytest.raises(AnalysisError) as caught:
        sandbox.analyse(database_type, content, "script")
    assert time.monotonic() - started < ANSWER_WITHIN_S
    assert caught.value.message.startswith(answer)
    assert sandbox.analyse("postgresql", "SELECT 1").kind == "read"


def test_a_crashing_parser_kills_only_its_worker(sandbox: AnalysisSandbox) -> None:
    before = worker_pids(sandbox)
    with pytest.raises(AnalysisError, match="the parser could not handle it"):
        sandbox.analyse("postgresql", "SELECT " + "+".join(["1"] * 25_000))
    assert sandbox.analyse("postgresql", "SELECT 2").kind == "read"
    after = worker_pids(sandbox)
    assert len(set(before) - set(after)) == 1  # exactly the crashed one was replaced


def test_a_worker_killed_from_outside_is_replaced(sandbox: AnalysisSandbox) -> None:
    sandbox.warm_up()
    for pid in worker_pids(sandbox):
        os.kill(pid, signal.SIGKILL)
    # Each call meets a dead worker at most once: it answers or says the parser failed.
    answers = []
    for _ in range(4):
        try:
            answers.append(sandbox.analyse("postgresql", "SELECT 3").kind)
        except AnalysisError as exc:
            answers.append(exc.message)
    assert answers[-1] == "read"


def test_a_time_overrun_is_stopped_and_answered() -> None:
    script = "".join(f"INSERT INTO t VALUES ({i}, 'row {i}');\n" for i in range(15_000))
    with AnalysisSandbox(workers=1, time_limit_s=0.05) as pool:
        started = time.monotonic()
        with pytest.raises(AnalysisError, match=r"^too complex to check: checking it took longer"):
            pool.analyse("postgresql", script, "script")
        assert time.monotonic() - started < 1
        assert pool.analyse("postgresql", "SELECT 1").kind == "read"


def address_space_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmSize")


def test_a_memory_overrun_is_answered(sandbox: AnalysisSandbox) -> None:
    sandbox.warm_up()
    idle = max(address_space_bytes(pid) for pid in worker_pids(sandbox))
    script = "".join(f"INSERT INTO t VALUES ({i}, 'row {i}');\n" for i in range(15_000))
    # Room to start and to check a short query, not to parse a 1 MB script (about 30 MB more).
    with AnalysisSandbox(workers=1, memory_limit_bytes=idle + 12 * 1024 * 1024) as pool:
        with pytest.raises(AnalysisError, match=r"^too complex to check: "):
            pool.analyse("postgresql", script, "script")
        assert pool.analyse("postgresql", "SELECT 1").kind == "read"


def test_concurrent_calls_share_the_pool(sandbox: AnalysisSandbox) -> None:
    results: list[str] = []
    lock = threading.Lock()

    def submit(n: int) -> None:
        kind = sandbox.analyse("postgresql", f"UPDATE t SET a = {n} WHERE id = {n}").kind
        with lock:
            results.append(kind)

    threads = [threading.Thread(target=submit, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert results == ["write"] * 12


def test_closed_sandbox_answers_and_leaves_no_process() -> None:
    pool = AnalysisSandbox()
    pool.warm_up()
    pids = worker_pids(pool)
    assert len(pids) == 2
    pool.close()
    with pytest.raises(AnalysisError, match="shutting down"):
        pool.analyse("postgresql", "SELECT 1")
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_unknown_database_type_is_a_programming_error(sandbox: AnalysisSandbox) -> None:
    with pytest.raises(ValueError):
        sandbox.analyse("oracle", "SELECT 1")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("x" * (MAX_CONTENT_CHARS + 1), "the text is over"),
        ("[" * (MAX_BRACKET_DEPTH + 1), "brackets nested more than"),
        ("SELECT " + "(" * (MAX_BRACKET_DEPTH + 1), "brackets nested more than"),
    ],
)
def test_shape_limits_are_checked_before_parsing(content: str, message: str) -> None:
    with pytest.raises(AnalysisError, match=f"^too complex to check: {message}"):
        check_shape(content)


def test_shape_limits_leave_ordinary_nesting_alone() -> None:
    check_shape("SELECT " + "(" * MAX_BRACKET_DEPTH + "1" + ")" * MAX_BRACKET_DEPTH)
    check_shape("db.c.aggregate([{$match: {a: {$in: [1, 2, [3]]}}}])" * 1000)


def test_the_process_wide_sandbox_is_used_by_submissions() -> None:
    assert analyse_isolated("postgresql", "SELECT 1").kind == "read"
    with pytest.raises(AnalysisError, match="^too complex to check"):
        analyse_isolated("postgresql", "SELECT " + "+".join(["1"] * 25_000))


def test_workers_get_none_of_the_serving_process_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-must-not-leak")
    monkeypatch.setenv("DBQUERY_TARGET_SECRET", '{"password": "must-not-leak"}')
    with AnalysisSandbox(workers=1) as pool:
        pool.warm_up()
        [pid] = worker_pids(pool)
        environment = Path(f"/proc/{pid}/environ").read_bytes()
    assert b"must-not-leak" not in environment
    assert b"SLACK_BOT_TOKEN" not in environment
