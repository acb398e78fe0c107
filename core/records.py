"""Plain, immutable views of portal rows: what core hands to bot/ (no session attached)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any


@dataclass(frozen=True)
class UserRecord:
    id: uuid.UUID
    email: str
    name: str
    role: str
    pod_id: str | None
    slack_user_id: str | None
    is_active: bool

    @classmethod
    def of(cls, row: Any) -> UserRecord:
        return cls(
            id=row.id,
            email=row.email,
            name=row.name,
            role=row.role,
            pod_id=row.pod_id,
            slack_user_id=row.slack_user_id,
            is_active=row.is_active,
        )


@dataclass(frozen=True)
class RequestRecord:
    id: int
    uuid: uuid.UUID
    requester: UserRecord
    database_type: str
    instance_id: str
    instance_name: str
    database_name: str
    submission_type: str
    query_content: str | None
    script_filename: str | None
    script_content: str | None
    comments: str | None
    pod_id: str
    pod_name: str
    status: str
    approver: UserRecord | None
    approver_email: str | None  # the decider's email when they decided
    approved_at: datetime | None
    rejected_at: datetime | None
    rejection_reason: str | None
    execution_started_at: datetime | None
    execution_completed_at: datetime | None
    execution_result: str | None
    execution_error: str | None
    created_at: datetime
    updated_at: datetime

    @property
    def content(self) -> str:
        return (
            self.query_content if self.submission_type == "query" else self.script_content
        ) or ""

    @cached_property
    def short_id(self) -> str:
        return self.uuid.hex[:8]

    @property
    def target_label(self) -> str:
        return f"{self.instance_name} / {self.database_name}"

    @property
    def decided_at(self) -> datetime | None:
        return self.approved_at or self.rejected_at

    def result_summary(self) -> dict[str, Any] | None:
        if not self.execution_result:
            return None
        try:
            return json.loads(self.execution_result)
        except ValueError:
            return None

    @classmethod
    def of(cls, row: Any, requester: Any, approver: Any | None) -> RequestRecord:
        return cls(
            id=row.id,
            uuid=row.uuid,
            requester=UserRecord.of(requester),
            database_type=row.database_type,
            instance_id=row.instance_id,
            instance_name=row.instance_name,
            database_name=row.database_name,
            submission_type=row.submission_type,
            query_content=row.query_content,
            script_filename=row.script_filename,
            script_content=row.script_content,
            comments=row.comments,
            pod_id=row.pod_id,
            pod_name=row.pod_name,
            status=row.status,
            approver=UserRecord.of(approver) if approver is not None else None,
            approver_email=row.approver_email,
            approved_at=row.approved_at,
            rejected_at=row.rejected_at,
            rejection_reason=row.rejection_reason,
            execution_started_at=row.execution_started_at,
            execution_completed_at=row.execution_completed_at,
            execution_result=row.execution_result,
            execution_error=row.execution_error,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )
