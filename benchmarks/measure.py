"""What the benchmarks share: throwaway PostgreSQL databases, a process's memory, and the
figures a measuring child prints."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import psycopg

PG_URL = os.environ.get("DBQUERY_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def pg_url(database: str, driver: str = "") -> str:
    """The benchmark server's URL with another database (and optionally a SQLAlchemy driver)."""
    base, _, _ = PG_URL.rpartition("/")
    if driver:
        base = base.replace("postgresql://", f"postgresql+{driver}://", 1)
    return f"{base}/{database}"


def create_database(prefix: str = "dbq_bench") -> str:
    """A new empty database on PG_URL's server; returns its name."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return name


def drop_database(name: str) -> None:
    with psycopg.connect(PG_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _status_mb(pid: int | str, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not found in /proc/{pid}/status")


def rss_mb(pid: int | str = "self") -> float:
    """Resident set size (VmRSS) of a live process now, in MB."""
    return _status_mb(pid, "VmRSS")


def peak_rss_mb(pid: int | str = "self") -> float:
    """Peak resident set size (VmHWM) of a live process, in MB."""
    return _status_mb(pid, "VmHWM")


def reset_peak_rss(pid: int) -> None:
    """Start VmHWM afresh (Linux's clear_refs), so a peak read later is what followed."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def print_child_figures(seconds: float, baseline_mb: float) -> None:
    """One JSON line for the parent: the timed work, peak RSS, and RSS before the work."""
    print(
        json.dumps(
            {"seconds": seconds, "peak_rss_mb": peak_rss_mb(), "baseline_rss_mb": baseline_mb}
        )
    )
