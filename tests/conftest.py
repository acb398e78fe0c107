"""Fixtures that start real servers: PostgreSQL databases, nx-27017 (MongoDB), moto."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

PG_URL = os.environ.get("DBQUERY_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check: Callable[[], Any], timeout: float = 15, what: str = "condition") -> Any:
    """Poll `check` until it returns something truthy, failing at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def wait_for_port(port: int, proc: subprocess.Popen, what: str, deadline_s: float = 30) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on port {port} within {deadline_s}s")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# --- PostgreSQL -------------------------------------------------------------------------


def pg_url_for(database: str, driver: str = "") -> str:
    """The test server's URL with another database (and optionally a SQLAlchemy driver)."""
    base, _, _ = PG_URL.rpartition("/")
    if driver:
        base = base.replace("postgresql://", f"postgresql+{driver}://", 1)
    return f"{base}/{database}"


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    try:
        with psycopg.connect(PG_URL, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL is unreachable at {PG_URL} (set DBQUERY_TEST_PG_URL): {exc}",
            pytrace=False,
        )
    return PG_URL


@pytest.fixture(scope="session")
def make_pg_database(pg_admin_url: str) -> Iterator[Callable[[], str]]:
    """Create throwaway databases; each call returns a new database name. Dropped at the end."""
    created: list[str] = []

    def create() -> str:
        name = f"dbq_test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        created.append(name)
        return name

    yield create
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        for name in created:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def pg_database(make_pg_database: Callable[[], str]) -> str:
    """A fresh PostgreSQL database per test module."""
    return make_pg_database()


# --- MongoDB (nx-27017) -----------------------------------------------------------------


def start_nx27017(workdir: Path) -> tuple[subprocess.Popen, int]:
    """A real nx-27017 (MongoDB wire protocol) on a free loopback port, data in memory."""
    port = free_port()
    proc = subprocess.Popen(
        [
            str(VENV_BIN / "nx-27017"),
            "--host", "127.0.0.1",
            "--port", str(port),
            "--data-dir", "memory",
            "--log-file", str(workdir / "nx.log"),
            "--pid-file", str(workdir / "nx.pid"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for_port(port, proc, "nx-27017")
    except BaseException:
        stop(proc)
        raise
    return proc, port


@pytest.fixture(scope="session")
def mongo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    proc, port = start_nx27017(tmp_path_factory.mktemp("nx27017"))
    try:
        yield ("127.0.0.1", port)
    finally:
        stop(proc)


# --- AWS Secrets Manager (moto server) --------------------------------------------------


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """A moto server over real HTTP; returns its endpoint URL."""
    port = free_port()
    proc = subprocess.Popen(
        [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, proc, "moto_server")
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)
