"""Approval policies applied to stored requests: assess at submit, approve in steps, expire, hold.

Each method that writes takes the caller's Session, so it joins the transaction of the service
call it belongs to (submit, approve, claim); nothing here commits on its own.

- `assess` estimates the request on its target (outside any transaction: it talks to the
  target) and computes its risk.
- `start` records what the policies make of a new request: its risk and estimate, how many
  approvals it needs and from whom, when it expires, its "Run after" and the request it re-runs;
  and approves it at once when an `auto_approve` rule matches.
- `approve_step` records one person's approval. A request that needs two stays `pending`
  until the second, which must come from someone else, in the rule's group.
- `expire_due` rejects pending requests whose decision time is over.
- `may_claim` is the worker's last check before running an approved request: its "Run after"
  has passed and, for writes and schema changes, the instance's window is open.
"""

from __future__ import annotations

import logging
import uuid as uuid_mod
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from core.analysis import Analysis
from core.catalogue import Catalogue, Instance
from core.errors import CredentialsError, InvalidSubmission, InvalidTransition, NotAllowed
from core.estimates import DEFAULT_TIMEOUT_S, Estimate, estimate, failed
from core.lifecycle import Role, Status
from core.policies import (
    ADMINS_GROUP,
    AutoApproveRule,
    Facts,
    Policies,
    auto_approval,
    earliest_run,
    expires_at,
    second_approval,
)
from core.records import RequestRecord, UserRecord
from core.risk import Risk, RiskLevel
from core.risk import assess as assess_risk
from core.secrets import SecretStore, connection_for
from db import approval_repository as approvals_repo
from db import repository as repo
from db.models import QueryRequest, RequestPolicy, User

log = logging.getLogger("dbquery.approvals")

POLICY_EMAIL_PREFIX = "policy:"
ESTIMATE_THREADS = 4
# How far ahead a "Run after" may be; further is almost surely a typo in the year.
RUN_AFTER_MAX_AHEAD = timedelta(days=90)


@dataclass(frozen=True)
class Assessment:
    risk: Risk
    estimate: Estimate


def who_gives_step_two(group: str | None) -> str:
    """'an admin', or 'an admin or a manager of pod <group>'."""
    group = group or ADMINS_GROUP
    return "an admin" if group == ADMINS_GROUP else f"an admin or a manager of pod {group}"


@dataclass(frozen=True)
class PolicyState:
    """What the surfaces show of a request beyond its row: risk, estimate, steps, schedule."""

    risk_level: str | None
    risk_reasons: tuple[str, ...]
    estimate_summary: str | None
    approvals_required: int
    second_approval_policy: str | None
    second_approval_group: str | None
    run_after: datetime | None
    not_before: datetime | None
    expires_at: datetime | None
    rerun_of: int | None
    steps: tuple[StepRecord, ...]
    rerun_of_uuid: uuid_mod.UUID | None = None

    @property
    def approvals_given(self) -> tuple[StepRecord, ...]:
        """The steps people gave (not a policy), in order."""
        return tuple(step for step in self.steps if step.approver_id is not None)

    @property
    def second_approver(self) -> str:
        """Who may give step 2, in words."""
        return who_gives_step_two(self.second_approval_group)

    @property
    def auto_approved_by(self) -> str | None:
        """The auto_approve policy that approved the request, if one did."""
        for step in self.steps:
            if step.approver_id is None and step.policy_name:
                return step.policy_name
        return None


@dataclass(frozen=True)
class StepRecord:
    step: int
    approver_id: uuid_mod.UUID | None
    approver_email: str
    approved_at: datetime
    policy_name: str | None


@dataclass(frozen=True)
class StepOutcome:
    """An approval click's result: the request is approved, or it waits for step 2."""

    approved: bool
    step: int
    of: int


class ApprovalPolicies:
    def __init__(
        self,
        catalogue: Catalogue,
        secrets: SecretStore | None,
        clock: Callable[[], datetime],
        *,
        estimate_timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.catalogue = catalogue
        self.secrets = secrets
        self.clock = clock
        self.estimate_timeout_s = estimate_timeout_s
        self.secrets = secrets or SecretStore()
        self._pool = ThreadPoolExecutor(
            max_workers=ESTIMATE_THREADS, thread_name_prefix="dbquery-estimate"
        )

    def policies_of(self, request: RequestRecord) -> Policies:
        instance = self.catalogue.instance(request.instance_id)
        return instance.policies_for(request.pod_id) if instance else Policies()

    # --- at submit ---------------------------------------------------------------------------

    def assess(
        self,
        instance: Instance,
        database: str,
        analysis: Analysis,
        content: str,
        submission_type: str,
    ) -> Assessment:
        """Estimate on the target as the request's own credentials, then the risk level.

        Never raises for the target's sake: a failed estimate is an estimate that says so.
        """
        large = instance.risk.large_table_rows
        try:
            creds = self.secrets.credentials(instance.secret)
            conn = connection_for(instance, database, creds)
            estimated = estimate(
                conn,
                instance.type.value,
                content,
                submission_type,
                timeout_s=self.estimate_timeout_s,
                large_table_rows=large,
                analysis=analysis,
            )
        except CredentialsError as exc:
            estimated = failed(exc.message, large)
        except Exception:
            # The estimate is advice: a bug in it must not stop a submission.
            log.exception("estimating a request on %s failed", instance.id)
            estimated = failed("an internal error; read the query carefully", large)
        risk = assess_risk(analysis.kind, estimated, analysis.warnings, instance.risk)
        return Assessment(risk=risk, estimate=estimated)

    def assess_in_background(
        self,
        instance: Instance,
        database: str,
        analysis: Analysis,
        content: str,
        submission_type: str,
    ) -> Future[Assessment]:
        return self._pool.submit(
            self.assess, instance, database, analysis, content, submission_type
        )

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def check_run_after(self, run_after: datetime | None) -> datetime | None:
        """A "Run after" in the past means now; one too far ahead is refused where it was typed."""
        if run_after is None:
            return None
        if run_after.tzinfo is None:
            raise InvalidSubmission("run_after", "give the time with its time zone")
        if run_after - self.clock() > RUN_AFTER_MAX_AHEAD:
            raise InvalidSubmission(
                "run_after", f"pick a time within {RUN_AFTER_MAX_AHEAD.days} days"
            )
        return run_after

    def start(
        self,
        session: Session,
        request: RequestRecord,
        analysis: Analysis,
        assessment: Assessment | None,
        *,
        run_after: datetime | None = None,
        rerun_of: int | None = None,
    ) -> AutoApproveRule | None:
        """Store the request's policy state; approve it now when an auto_approve rule matches.

        Without an assessment (the estimate still runs) no rule can match yet: `assessed`
        applies them once it arrives.
        """
        policies = self.policies_of(request)
        # Until the estimate arrives, the second-approval rules see the worst case (every
        # row threshold reached, critical risk): an early approval never needs fewer people.
        worst = second_approval(policies, Facts(analysis.kind, RiskLevel.CRITICAL, None))
        approvals_repo.add_request_policy(
            session,
            request.id,
            approvals_required=2 if worst else 1,
            second_approval_policy=worst.name if worst else None,
            second_approval_group=worst.group if worst else None,
            run_after=run_after,
            # The service's clock, not the row's created_at: tests and replays move the clock.
            expires_at=expires_at(policies, self.clock()),
            rerun_of=rerun_of,
        )
        if assessment is None:
            return None
        return self.assessed(session, request, analysis, assessment)

    def assessed(
        self, session: Session, request: RequestRecord, analysis: Analysis, assessment: Assessment
    ) -> AutoApproveRule | None:
        """Record the risk and estimate of a pending request and apply the rules that use them."""
        policies = self.policies_of(request)
        facts = Facts(analysis.kind, assessment.risk.level, assessment.estimate.rows)
        values: dict[str, object] = {
            "risk_level": assessment.risk.level.value,
            "risk_reasons": "\n".join(assessment.risk.reasons) or None,
            "estimate_summary": assessment.estimate.summary(),
            "estimated_rows": assessment.estimate.rows,
        }
        steps_given = bool(approvals_repo.approval_steps(session, request.id))
        second = second_approval(policies, facts)
        if not steps_given:
            # Someone approved on the worst-case rule already: the request keeps that rule.
            values.update(
                approvals_required=2 if second else 1,
                second_approval_policy=second.name if second else None,
                second_approval_group=second.group if second else None,
            )
        approvals_repo.update_request_policy(session, request.id, **values)
        rule = None if second or steps_given else auto_approval(policies, facts)
        if rule is None:
            return None
        now = self.clock()
        email = f"{POLICY_EMAIL_PREFIX}{rule.name}"
        if not repo.transition(
            session,
            request.id,
            Status.PENDING,
            Status.APPROVED,
            approver_id=None,
            approver_email=email,
            approved_at=now,
            updated_at=now,
        ):
            return None  # a person decided first
        approvals_repo.add_approval_step(
            session,
            request_id=request.id,
            step=1,
            approver_id=None,
            approver_email=email,
            approved_at=now,
            policy_name=rule.name,
        )
        self._schedule(session, request, analysis.kind, now)
        return rule

    # --- decisions ---------------------------------------------------------------------------

    def approve_step(
        self, session: Session, request: RequestRecord, decider: User, kind: str
    ) -> StepOutcome:
        """Record `decider`'s approval; approve the request when it was the last one needed.

        The caller has checked that the decider may decide this request at all (step 1's rule).
        Raises NotAllowed (same person twice, not in the second step's group) or
        InvalidTransition (someone else took this step first, or the request moved on).
        """
        state = approvals_repo.request_policy(session, request.id)
        required = state.approvals_required if state else 1
        steps = approvals_repo.approval_steps(session, request.id)
        number = len(steps) + 1
        if any(step.approver_id == decider.id for step in steps):
            raise NotAllowed(
                "You approved step 1 already; the second approval must come from someone else."
            )
        if number > required:
            last = steps[-1]
            raise InvalidTransition(
                f"Step {last.step} of {required} was approved by {last.approver_email} meanwhile",
                Status.APPROVED,
            )
        if number == 2 and state is not None:
            self._check_second_approver(state, steps[0].approver_email, decider)
        now = self.clock()
        if not approvals_repo.add_approval_step(
            session,
            request_id=request.id,
            step=number,
            approver_id=decider.id,
            approver_email=decider.email,
            approved_at=now,
            policy_name=state.second_approval_policy if state and number == 2 else None,
        ):
            session.expire_all()
            taken = approvals_repo.approval_steps(session, request.id)
            who = next((s.approver_email for s in taken if s.step == number), "someone")
            if any(s.approver_id == decider.id for s in taken):
                raise NotAllowed(
                    "You approved step 1 already; the second approval must come from someone else."
                )
            raise InvalidTransition(
                f"Step {number} of {required} was approved by {who} meanwhile", Status.PENDING
            )
        if number < required:
            return StepOutcome(approved=False, step=number, of=required)
        if not repo.transition(
            session,
            request.id,
            Status.PENDING,
            Status.APPROVED,
            approver_id=decider.id,
            approver_email=decider.email,
            approved_at=now,
            updated_at=now,
        ):
            raise InvalidTransition("The request changed meanwhile; try again", request.status)
        self._schedule(session, request, kind, now)
        return StepOutcome(approved=True, step=number, of=required)

    @staticmethod
    def _check_second_approver(state: RequestPolicy, first: str, decider: User) -> None:
        group = state.second_approval_group or ADMINS_GROUP
        if decider.role == Role.ADMIN:
            return
        if group != ADMINS_GROUP and decider.role == Role.MANAGER and decider.pod_id == group:
            return
        raise NotAllowed(
            f"Step 1 was approved by {first}; you can't give the second approval: "
            f"policy {state.second_approval_policy} needs {who_gives_step_two(group)}."
        )

    def second_approvers(self, session: Session, request: RequestRecord) -> list[UserRecord]:
        """Who is asked for step 2 once step 1 is given: the rule's group, never the requester
        or step 1's approver; empty before step 1 and for one-step requests."""
        state = approvals_repo.request_policy(session, request.id)
        if state is None or state.approvals_required < 2:
            return []
        if not approvals_repo.approval_steps(session, request.id):
            return []  # step 1 is not given yet
        group = state.second_approval_group or ADMINS_GROUP
        people = list(repo.active_admins(session))
        if group != ADMINS_GROUP:
            people = list(repo.active_managers_of_pod(session, group)) + people
        done = {step.approver_id for step in approvals_repo.approval_steps(session, request.id)}
        seen: dict[uuid_mod.UUID, User] = {}
        for user in people:
            if user.id != request.requester.id and user.id not in done:
                seen.setdefault(user.id, user)
        return [UserRecord.of(user) for user in seen.values()]

    def state(self, session: Session, request_id: int) -> PolicyState | None:
        row = approvals_repo.request_policy(session, request_id)
        if row is None:
            return None
        steps = tuple(
            StepRecord(s.step, s.approver_id, s.approver_email, s.approved_at, s.policy_name)
            for s in approvals_repo.approval_steps(session, request_id)
        )
        return PolicyState(
            risk_level=row.risk_level,
            risk_reasons=tuple((row.risk_reasons or "").splitlines()),
            estimate_summary=row.estimate_summary,
            approvals_required=row.approvals_required,
            second_approval_policy=row.second_approval_policy,
            second_approval_group=row.second_approval_group,
            run_after=row.run_after,
            not_before=row.not_before,
            expires_at=row.expires_at,
            rerun_of=row.rerun_of,
            steps=steps,
            rerun_of_uuid=(
                source.uuid
                if row.rerun_of is not None
                and (source := session.get(QueryRequest, row.rerun_of)) is not None
                else None
            ),
        )

    # --- expiry ------------------------------------------------------------------------------

    def expire_due(self, session: Session) -> list[int]:
        """Reject each pending request past its decision time; the ids of those rejected."""
        now = self.clock()
        expired = []
        for request_id in approvals_repo.pending_expired_ids(session, now):
            row = repo.request_by_id_with_people(session, request_id)
            if row is None:
                continue
            hours = self.policies_of(_record(row)).expire_after_h
            if repo.transition(
                session,
                request_id,
                Status.PENDING,
                Status.REJECTED,
                approver_id=None,
                approver_email=f"{POLICY_EMAIL_PREFIX}expire_after_h",
                rejected_at=now,
                rejection_reason=f"expired: no decision in {hours} h",
                updated_at=now,
            ):
                repo.add_outcome_delivery(session, request_id, None)
                expired.append(request_id)
        return expired

    # --- scheduling --------------------------------------------------------------------------

    def _schedule(self, session: Session, request: RequestRecord, kind: str, now: datetime) -> None:
        state = approvals_repo.request_policy(session, request.id)
        run_after = state.run_after if state else None
        start = earliest_run(self.policies_of(request), kind, now, run_after)
        if start > now:
            if state is None:
                approvals_repo.add_request_policy(
                    session, request.id, approvals_required=1, not_before=start
                )
            else:
                approvals_repo.update_request_policy(session, request.id, not_before=start)

    def may_claim(self, session: Session, request: RequestRecord, kind: str) -> bool:
        """Whether an approved request may start now; if not, when it may is stored."""
        now = self.clock()
        state = approvals_repo.request_policy(session, request.id)
        run_after = state.run_after if state else None
        start = earliest_run(self.policies_of(request), kind, now, run_after)
        if start <= now:
            return True
        if state is None:
            approvals_repo.add_request_policy(
                session, request.id, approvals_required=1, not_before=start
            )
        else:
            approvals_repo.update_request_policy(session, request.id, not_before=start)
        return False


def _record(row) -> RequestRecord:
    request, requester, approver = row
    return RequestRecord.of(request, requester, approver)


def is_policy_decision(approver_email: str | None) -> bool:
    return bool(approver_email) and approver_email.startswith(POLICY_EMAIL_PREFIX)


__all__ = [
    "ApprovalPolicies",
    "Assessment",
    "PolicyState",
    "RiskLevel",
    "StepOutcome",
    "is_policy_decision",
]
