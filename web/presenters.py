"""Requests, users and analyses as the JSON the API returns and the pages render."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core.analysis import Analysis
from core.approvals import PolicyState
from core.lifecycle import Status, why_cannot_decide, why_cannot_view
from core.records import RequestRecord, UserRecord


@dataclass(frozen=True)
class Step:
    what: str
    who: str | None
    at: datetime | None
    detail: str | None = None


def timeline(request: RequestRecord) -> list[Step]:
    """Who submitted, decided and ran the request, and when, in order."""
    steps = [Step("submitted", request.requester.email, request.created_at)]
    decider = request.approver_email or (request.approver.email if request.approver else None)
    if request.approved_at:
        steps.append(Step("approved", decider, request.approved_at))
    if request.rejected_at:
        steps.append(Step("rejected", decider, request.rejected_at, request.rejection_reason))
    if request.execution_started_at:
        steps.append(Step("started", "dbquery", request.execution_started_at))
    if request.execution_completed_at:
        outcome = "failed" if request.status == Status.FAILED else "completed"
        steps.append(
            Step(outcome, "dbquery", request.execution_completed_at, request.execution_error)
        )
    return steps


def user_json(user: UserRecord) -> dict[str, Any]:
    return {
        "id": str(user.id),
        "email": user.email,
        "name": user.name,
        "role": user.role,
        "pod": user.pod_id,
        "slack_user_id": user.slack_user_id,
        "active": user.is_active,
    }


def request_json(request: RequestRecord, *, full: bool = False) -> dict[str, Any]:
    """A request as the API returns it. Times and the id stay datetime and UUID objects: both
    JSON encoders the API uses (orjson, FastAPI's own) write them as ISO 8601 and UUID text."""
    body: dict[str, Any] = {
        "id": request.uuid,
        "short_id": request.short_id,
        "status": request.status,
        "requester": {"email": request.requester.email, "name": request.requester.name},
        "pod": {"id": request.pod_id, "name": request.pod_name},
        "target": {
            "instance_id": request.instance_id,
            "instance_name": request.instance_name,
            "database": request.database_name,
            "database_type": request.database_type,
        },
        "submission_type": request.submission_type,
        "script_filename": request.script_filename,
        "comments": request.comments,
        "created_at": request.created_at,
        "updated_at": request.updated_at,
        "decided_by": request.approver_email,
        "approved_at": request.approved_at,
        "rejected_at": request.rejected_at,
        "rejection_reason": request.rejection_reason,
        "execution_started_at": request.execution_started_at,
        "execution_completed_at": request.execution_completed_at,
        "execution_error": request.execution_error,
    }
    if full:
        body["content"] = request.content
        body["result"] = request.result_summary()
        body["timeline"] = [
            {"what": s.what, "who": s.who, "at": s.at, "detail": s.detail}
            for s in timeline(request)
        ]
    else:
        body["query"] = request.query_content
    return body


def policy_json(state: PolicyState | None) -> dict[str, Any] | None:
    """Risk, estimate, approval steps and schedule; None for a request stored before policies."""
    if state is None:
        return None
    return {
        "risk_level": state.risk_level,
        "risk_reasons": list(state.risk_reasons),
        "estimate": state.estimate_summary,
        "approvals_required": state.approvals_required,
        "second_approval": (
            {"policy": state.second_approval_policy, "group": state.second_approval_group}
            if state.approvals_required > 1
            else None
        ),
        "steps": [
            {
                "step": step.step,
                "by": step.approver_email,
                "at": step.approved_at,
                "policy": step.policy_name,
            }
            for step in state.steps
        ],
        "run_after": state.run_after,
        "not_before": state.not_before,
        "expires_at": state.expires_at,
        "rerun_of": state.rerun_of_uuid,
    }


def analysis_json(analysis: Analysis) -> dict[str, Any]:
    return {
        "kind": analysis.kind,
        "read_only": analysis.read_only,
        "tables": list(analysis.tables),
        "reasons": list(analysis.reasons),
        "warnings": list(analysis.warnings),
        "statements": [
            {
                "line": s.line,
                "kind": s.kind,
                "text": s.text,
                "tables": list(s.tables),
                "reasons": list(s.reasons),
            }
            for s in analysis.statements
        ],
    }


def may_view(user: UserRecord, request: RequestRecord) -> str | None:
    return why_cannot_view(user, requester_id=request.requester.id, request_pod=request.pod_id)


def may_decide(user: UserRecord, request: RequestRecord) -> str | None:
    return why_cannot_decide(user, requester_id=request.requester.id, request_pod=request.pod_id)
