"""Factories for the records and analyses the Block Kit builders are given."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from core.catalogue import Catalogue, parse_catalogue
from core.records import RequestRecord, UserRecord

CREATED = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)
DECIDED = datetime(2024, 5, 1, 10, 15, tzinfo=UTC)


@dataclass(frozen=True)
class StatementStub:
    text: str
    kind: str = "read"
    tables: tuple[str, ...] = ()
    line: int = 1


@dataclass(frozen=True)
class AnalysisStub:
    """Stands in for core.analysis.Analysis: the attributes the views read."""

    kind: str = "read"
    statements: tuple[StatementStub, ...] = (StatementStub("SELECT 1"),)
    warnings: tuple[str, ...] = ()
    tables: tuple[str, ...] = ("orders",)

    @property
    def read_only(self) -> bool:
        return self.kind == "read"


def make_user(
    name: str = "Ann Example",
    *,
    role: str = "developer",
    slack_user_id: str | None = "U0ANN",
    pod_id: str | None = "payments",
    is_active: bool = True,
) -> UserRecord:
    return UserRecord(
        id=uuid.uuid4(),
        email=f"{name.split()[0].lower()}@example.com",
        name=name,
        role=role,
        pod_id=pod_id,
        slack_user_id=slack_user_id,
        is_active=is_active,
    )


def make_request(**changes: Any) -> RequestRecord:
    """A pending PostgreSQL query request; keyword arguments replace fields."""
    base = RequestRecord(
        id=1,
        uuid=uuid.uuid4(),
        requester=make_user(),
        database_type="postgresql",
        instance_id="pg-shop",
        instance_name="Shop PostgreSQL",
        database_name="shop",
        submission_type="query",
        query_content="SELECT id, total FROM orders WHERE total > 100",
        script_filename=None,
        script_content=None,
        comments="Checking last week's big orders",
        pod_id="payments",
        pod_name="Payments",
        status="pending",
        approver=None,
        approver_email=None,
        approved_at=None,
        rejected_at=None,
        rejection_reason=None,
        execution_started_at=None,
        execution_completed_at=None,
        execution_result=None,
        execution_error=None,
        created_at=CREATED,
        updated_at=CREATED,
    )
    return replace(base, **changes)


def decided(request: RequestRecord, status: str, **changes: Any) -> RequestRecord:
    """`request` after a manager decided (and maybe after it ran)."""
    boss = make_user("Bob Boss", role="manager", slack_user_id="U0BOB")
    values: dict[str, Any] = {
        "status": status,
        "approver": boss,
        "approver_email": boss.email,
        "updated_at": DECIDED,
    }
    if status == "rejected":
        values.update(rejected_at=DECIDED, rejection_reason="Too broad; add a date filter")
    else:
        values["approved_at"] = DECIDED
    if status in ("executing", "completed", "failed"):
        values["execution_started_at"] = DECIDED
    if status in ("completed", "failed"):
        values["execution_completed_at"] = DECIDED
    values.update(changes)
    return replace(request, **values)


@dataclass
class Result:
    """Builds the execution_result JSON the executors store (core.executors.results.summary)."""

    columns: list[str] = field(default_factory=list)
    preview: list[list[Any]] = field(default_factory=list)
    row_count: int = 0
    truncated: bool = False
    statements: list[dict[str, Any]] = field(default_factory=list)
    elapsed_ms: int = 42
    file_format: str | None = None
    notes: list[str] = field(default_factory=list)

    def json(self) -> str:
        return json.dumps(self.__dict__, default=str, ensure_ascii=False)


def completed(request: RequestRecord, result: Result) -> RequestRecord:
    return decided(request, "completed", execution_result=result.json())


def make_catalogue(instances: int = 2, databases: int = 2, *, id_prefix: str = "pg") -> Catalogue:
    raw = {
        "pods": [{"id": "payments", "name": "Payments"}],
        "instances": [
            {
                "id": f"{id_prefix}-{i}",
                "name": f"Instance {i}",
                "type": "postgresql" if i % 2 == 0 else "mongodb",
                "host": "127.0.0.1",
                "port": 5432,
                "databases": [f"db{j}" for j in range(databases)],
            }
            for i in range(instances)
        ],
    }
    return parse_catalogue(raw, "test")
