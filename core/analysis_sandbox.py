"""Analysis of untrusted text in worker processes, with time, memory, size and depth limits.

The parsers are native code or deeply recursive: a long enough `1+1+...` makes pglast overflow
the C stack (SIGSEGV), a deep nesting makes Python raise RecursionError, a huge number makes
int() refuse. None of that may reach the process that serves Slack. So a submission is first
checked for size and bracket depth, then parsed and classified by a worker process that has a
memory limit (RLIMIT_AS) and is killed when it overruns its time. Whatever goes wrong becomes
an AnalysisError whose message the person sees on the field they filled in.

Workers are plain `python -m core.analysis_sandbox` processes (no fork of the serving process
and its threads, nothing of it inherited) that stay up between calls: a warm worker adds a
socket round trip per call, and a replacement costs one interpreter start (about 0.1 s).
"""

from __future__ import annotations

import atexit
import logging
import os
import pickle
import queue
import re
import resource
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from core.analysis import Analysis, AnalysisError, analyse

if TYPE_CHECKING:
    from core.catalogue import Catalogue
    from core.records import RequestRecord

log = logging.getLogger("dbquery.analysis")

DATABASE_TYPES = ("postgresql", "mongodb")
# Above every submission limit (queries 100 KB, scripts 1 MB); a guard for other callers.
MAX_CONTENT_CHARS = 2 * 1024 * 1024
# Real queries and pipelines nest a few dozen levels; the parsers recurse once per level.
MAX_BRACKET_DEPTH = 256
TIME_LIMIT_S = 4.0  # with a worker free, the person gets an answer within 5 s whatever the text
MEMORY_LIMIT_BYTES = 512 * 1024 * 1024
WORKERS = 2
WAIT_FOR_WORKER_S = 10.0
START_LIMIT_S = 15.0  # an interpreter start, on a machine that may be busy
STOP_GRACE_S = 2.0

TOO_COMPLEX = "too complex to check"
CANNOT_START = "dbquery could not start its query checker; submit again in a moment"
_WORKER_ENVIRONMENT = {"PATH": os.defpath, "LANG": "C.UTF-8"}
_BRACKETS = re.compile(r"[()\[\]{}]")


def check_shape(content: str) -> None:
    """Cheap limits checked before any parser sees the text."""
    if len(content) > MAX_CONTENT_CHARS:
        raise AnalysisError(f"{TOO_COMPLEX}: the text is over {MAX_CONTENT_CHARS:,} characters")
    depth = deepest = 0
    for match in _BRACKETS.finditer(content):
        if match.group() in "([{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > MAX_BRACKET_DEPTH:
                    raise AnalysisError(
                        f"{TOO_COMPLEX}: brackets nested more than {MAX_BRACKET_DEPTH} deep"
                    )
        elif depth:
            depth -= 1


# --- the worker process ---------------------------------------------------------------------


def _serve_requests(conn: Connection, memory_limit: int) -> None:
    """A worker's life: answer analysis requests until the socket closes."""
    resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))
    # The mongo parser is imported now, not on the first MongoDB submission.
    import core.mongo_analysis  # noqa: F401

    try:
        conn.send(("ready",))
        while True:
            answer, retire = _answer(*conn.recv())
            conn.send(answer)
            if retire:  # after running out of memory or stack, start from a clean process
                return
    except (EOFError, OSError):  # the pool closed the socket: nothing left to answer
        return


def _answer(
    database_type: str, content: str, submission_type: str, allow_server_js: bool
) -> tuple[Any, bool]:
    try:
        analysis = analyse(database_type, content, submission_type, allow_server_js=allow_server_js)
        return ("analysis", analysis), False
    except AnalysisError as exc:
        return ("refused", exc.message, exc.line, exc.column), False
    except RecursionError:
        return ("refused", f"{TOO_COMPLEX}: it is nested too deeply", None, None), True
    except MemoryError:
        message = f"{TOO_COMPLEX}: checking it needs more memory than allowed"
        return ("refused", message, None, None), True
    except (ArithmeticError, ValueError) as exc:
        message = f"{TOO_COMPLEX}: a value in it is out of range ({_short(exc)})"
        return ("refused", message, None, None), False
    except Exception as exc:
        message = f"dbquery could not check it: the analyser failed ({type(exc).__name__})"
        return ("refused", message, None, None), True


def _short(exc: Exception) -> str:
    text = str(exc).split(";")[0]
    return text if len(text) <= 120 else text[:119] + "…"


# --- the pool -------------------------------------------------------------------------------


@dataclass
class _Worker:
    process: subprocess.Popen[bytes]
    conn: Connection
    ready: bool = False

    def alive(self) -> bool:
        return self.process.poll() is None and not self.conn.closed

    def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        try:
            self.conn.close()  # the worker reads end-of-file and returns
        except OSError:
            pass
        try:
            self.process.wait(grace_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class AnalysisSandbox:
    """A small pool of analysis worker processes.

    `analyse()` has the signature and the answers of core.analysis.analyse: an Analysis, or
    an AnalysisError with a message for the person (ValueError for an unknown database type).
    A worker that crashes, overruns its time or runs out of memory is replaced at once. Safe
    to call from many threads (a call waits for a free worker); `close()` stops the workers.
    """

    def __init__(
        self,
        workers: int = WORKERS,
        time_limit_s: float = TIME_LIMIT_S,
        memory_limit_bytes: int = MEMORY_LIMIT_BYTES,
        wait_for_worker_s: float = WAIT_FOR_WORKER_S,
    ) -> None:
        self.time_limit_s = time_limit_s
        self.memory_limit_bytes = memory_limit_bytes
        self.wait_for_worker_s = wait_for_worker_s
        # A slot holds a worker, or None until one is needed; a call takes a slot for itself.
        self._slots: queue.Queue[_Worker | None] = queue.Queue()
        for _ in range(workers):
            self._slots.put(None)
        self._size = workers
        self._closed = False
        self._owner_pid = os.getpid()

    def analyse(
        self,
        database_type: str,
        content: str,
        submission_type: str = "query",
        *,
        allow_server_js: bool = False,
    ) -> Analysis:
        if database_type not in DATABASE_TYPES:
            raise ValueError(f"unsupported database type {database_type!r}")
        check_shape(content)
        worker: _Worker | None = self._take()
        try:
            question = (database_type, content, submission_type, allow_server_js)
            answer, worker = self._ask(worker, question)
        finally:
            # A worker that had to go is replaced at once, so the next call finds one started.
            self._slots.put(worker if worker is not None else self._replacement())
        if answer[0] == "analysis":
            return answer[1]
        _, message, line, column = answer
        raise AnalysisError(message, line, column)

    def warm_up(self) -> None:
        """Start every worker now rather than on the first calls."""
        taken = [self._take() for _ in range(self._size)]
        for worker in taken:
            try:
                self._wait_until_ready(worker)
            except AnalysisError:
                worker = None
            self._slots.put(worker)

    def close(self) -> None:
        """Stop the workers; later calls raise AnalysisError."""
        self._closed = True
        for _ in range(self._size):
            try:
                worker = self._slots.get(timeout=self.time_limit_s + STOP_GRACE_S)
            except queue.Empty:
                break
            if worker is not None and os.getpid() == self._owner_pid:
                worker.stop()

    def __enter__(self) -> AnalysisSandbox:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _take(self) -> _Worker:
        if self._closed:
            raise AnalysisError("dbquery is shutting down; submit again in a moment")
        try:
            worker = self._slots.get(timeout=self.wait_for_worker_s)
        except queue.Empty:
            raise AnalysisError(
                "dbquery is busy checking other submissions; submit again in a moment"
            ) from None
        if worker is not None and worker.alive():
            return worker
        try:
            if worker is not None:
                worker.stop(grace_s=0)
            return self._start_worker()
        except OSError as exc:  # out of processes or file descriptors
            self._slots.put(None)
            log.warning("could not start an analysis worker: %s", exc)
            raise AnalysisError(CANNOT_START) from None
        except BaseException:
            self._slots.put(None)
            raise

    def _start_worker(self) -> _Worker:
        ours, theirs = socket.socketpair()
        try:
            # -I: nothing from the environment or the working directory shapes the worker.
            command = [
                sys.executable,
                "-I",
                "-m",
                "core.analysis_sandbox",
                str(theirs.fileno()),
                str(self.memory_limit_bytes),
            ]
            process = subprocess.Popen(
                command,
                pass_fds=(theirs.fileno(),),
                # The serving process's environment holds tokens and credentials; the
                # process that reads untrusted text gets none of it.
                env=_WORKER_ENVIRONMENT,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                # A parser that runs out of memory prints its allocator's state before it
                # exits; the pool logs the exit code instead.
                stderr=subprocess.DEVNULL,
                close_fds=True,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        return _Worker(process, Connection(ours.detach()))

    def _replacement(self) -> _Worker | None:
        if self._closed:
            return None
        try:
            return self._start_worker()
        except OSError as exc:
            log.warning("could not start an analysis worker: %s", exc)
            return None

    def _wait_until_ready(self, worker: _Worker) -> None:
        """A new worker's start-up does not count against the time limit of its first call."""
        if worker.ready:
            return
        try:
            if worker.conn.poll(START_LIMIT_S) and worker.conn.recv() == ("ready",):
                worker.ready = True
                return
        except (EOFError, OSError):
            pass
        log.warning("an analysis worker did not start (exit code %s)", worker.process.poll())
        worker.process.kill()
        worker.stop()
        raise AnalysisError(CANNOT_START)

    def _ask(self, worker: _Worker, request: tuple[str, str, str]) -> tuple[Any, _Worker | None]:
        """The worker's answer, and the worker to put back (None once it had to go)."""
        try:
            self._wait_until_ready(worker)
        except AnalysisError as exc:
            return ("refused", exc.message, None, None), None
        started = time.monotonic()
        try:
            worker.conn.send(request)
            if worker.conn.poll(self.time_limit_s):
                return worker.conn.recv(), worker
        except (EOFError, OSError, pickle.PickleError):
            # The worker died mid-way: a crash in native code (SIGSEGV), or killed for memory.
            worker.stop()
            log.warning(
                "an analysis worker died (exit code %s) after %.2f s",
                worker.process.returncode,
                time.monotonic() - started,
            )
            return ("refused", f"{TOO_COMPLEX}: the parser could not handle it", None, None), None
        log.warning("an analysis worker overran its %.1f s limit; stopping it", self.time_limit_s)
        worker.process.kill()
        worker.stop()
        message = f"{TOO_COMPLEX}: checking it took longer than {self.time_limit_s:g} s"
        return ("refused", message, None, None), None


# --- the process-wide sandbox ---------------------------------------------------------------

_shared: AnalysisSandbox | None = None
_shared_lock = threading.Lock()


def shared_sandbox() -> AnalysisSandbox:
    """The sandbox of this process, created on first use and closed at exit."""
    global _shared
    with _shared_lock:
        if _shared is None or _shared._owner_pid != os.getpid():
            _shared = AnalysisSandbox()
            atexit.register(close_shared_sandbox)
        return _shared


def close_shared_sandbox() -> None:
    global _shared
    with _shared_lock:
        sandbox, _shared = _shared, None
    if sandbox is not None:
        sandbox.close()


def analyse_isolated(
    database_type: str,
    content: str,
    submission_type: str = "query",
    *,
    allow_server_js: bool = False,
) -> Analysis:
    """core.analysis.analyse, run in this process's sandbox."""
    return shared_sandbox().analyse(
        database_type, content, submission_type, allow_server_js=allow_server_js
    )


def analyse_stored(
    catalogue: Catalogue, request: RequestRecord, *, isolated: bool = True
) -> Analysis:
    """A stored request's analysis as submit made it: under its instance's allow_server_js.

    `isolated=False` analyses in this process, for text that already passed the sandbox.
    """
    instance = catalogue.instance(request.instance_id)
    run = analyse_isolated if isolated else analyse
    return run(
        request.database_type,
        request.content,
        request.submission_type,
        allow_server_js=bool(instance and instance.allow_server_js),
    )


def _main(argv: list[str]) -> None:
    fd, memory_limit = int(argv[1]), int(argv[2])
    _serve_requests(Connection(fd), memory_limit)


if __name__ == "__main__":
    _main(sys.argv)
