"""What an executor is given: where to connect, as whom, and what to run."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from core.executors.results import ResultLimits


@dataclass(frozen=True)
class Connection:
    host: str
    port: int
    database: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    statement_timeout_s: int = 60
    max_rows: int = 100_000
    total_timeout_s: int = 300  # the whole request, every statement and the result file
    connect_timeout_s: int = 10
    tls: bool | None = None  # None: the driver's default
    auth_source: str | None = None  # MongoDB: where the user is defined


@dataclass(frozen=True)
class Job:
    request_uuid: str
    submission_type: str  # query | script
    content: str
    out_dir: Path  # where the executor writes the full result file
    read_only: bool = False  # the analysis found only reads: run in a READ ONLY transaction
    limits: ResultLimits = field(default_factory=ResultLimits)  # result bytes, compression
    allow_server_js: bool = False  # MongoDB: the instance accepts $where, $function, mapReduce
