"""The request lifecycle: submit, decide, read; and which pending requests are due a reminder.

Submitting and deciding are one transaction each, every status change one conditional write
(core.request_rows); each publishes its event once it has committed. Reminders take one
transaction per request due. Claiming and finishing executions is core.queue's; delivering
outcomes is core.deliveries'.
"""

from __future__ import annotations

import logging
import uuid as uuid_mod
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from core.approvals import ApprovalPolicies, Assessment, PolicyState
from core.catalogue import Catalogue
from core.errors import InvalidSubmission, InvalidTransition, NotAllowed, NotFound, NotRegistered
from core.events import EventBus, EventKind
from core.lifecycle import Role, Status, SubmissionType, why_cannot_decide, why_cannot_view
from core.records import RequestRecord, UserRecord
from core.request_rows import RequestRows, UsesRequestRows, as_uuid, record
from db import approval_repository as approvals_repo
from db import repository as repo
from db.models import QueryRequest, User, utcnow
from db.session import Sessions

log = logging.getLogger("dbquery.requests")

QUERY_MAX_BYTES = 100 * 1024
SCRIPT_MAX_BYTES = 1024 * 1024
SCRIPT_TOO_LARGE = "the script is over 1 MB"  # said wherever the size is first known
COMMENTS_MAX_CHARS = 3_000
REASON_MAX_CHARS = 3_000
# How long submit waits for the cost estimate before it announces the request without it
# (the estimate then follows as an ASSESSED event); short enough for a form's 3 s answer.
ASSESS_WAIT_S = 1.0


@dataclass(frozen=True)
class Submission:
    target: str  # "<instance_id>/<database>"
    submission_type: str  # query | script
    query: str | None = None
    script_filename: str | None = None
    script_content: str | None = None
    comments: str | None = None
    run_after: datetime | None = None  # hold the approved request until then
    rerun_of: str | None = None  # the uuid of the request this one runs again


def _size(text: str) -> int:
    return len(text.encode("utf-8"))


class RequestService(UsesRequestRows):
    """The request lifecycle: submit, decide, read, and remind approvers of what waits."""

    def __init__(
        self,
        sessions: Sessions,
        catalogue: Catalogue,
        clock: Callable[[], datetime] = utcnow,
        events: EventBus | None = None,
        *,
        rows: RequestRows | None = None,
        policies: ApprovalPolicies | None = None,
        assess_wait_s: float = ASSESS_WAIT_S,
    ) -> None:
        self.rows = rows or RequestRows(sessions, clock, events)
        self.catalogue = catalogue
        # The shared clock, read through rows so that a clock set later is the one used.
        self.policies = policies or ApprovalPolicies(catalogue, None, lambda: self.clock())
        self.assess_wait_s = assess_wait_s

    # --- reading -----------------------------------------------------------------------------

    def get(self, request_uuid: uuid_mod.UUID | str) -> RequestRecord:
        with self.sessions() as session:
            return self.rows.load(session, as_uuid(request_uuid))

    def find(self, text: str) -> RequestRecord:
        """A request by its uuid or a unique prefix of it (at least 4 characters)."""
        text = text.strip().lower()
        if len(text.replace("-", "")) < 4 or any(c not in "0123456789abcdef-" for c in text):
            raise NotFound(f"{text!r} is not a request id (give its uuid or first 8 characters)")
        with self.sessions() as session:
            rows = repo.requests_by_uuid_prefix(session, text)
        if not rows:
            raise NotFound(f"no request starts with {text!r}")
        if len(rows) > 1:
            raise NotFound(f"{text!r} matches more than one request; give more characters")
        return record(rows[0])

    def recent(
        self,
        *,
        user_id: uuid_mod.UUID | None = None,
        status: str | None = None,
        limit: int = 20,
    ) -> list[RequestRecord]:
        if status is not None and status not in set(Status):
            raise InvalidSubmission("status", f"unknown status {status!r}")
        with self.sessions() as session:
            rows = repo.recent_requests(session, user_id=user_id, status=status, limit=limit)
            return [record(r) for r in rows]

    def pending_for(self, decider: UserRecord, limit: int = 20) -> list[RequestRecord]:
        """Requests waiting for this person's decision (none for developers)."""
        if not decider.is_active or decider.role == Role.DEVELOPER:
            return []
        with self.sessions() as session:
            rows = repo.pending_for_decider(
                session,
                pod_id=decider.pod_id,
                is_admin=decider.role == Role.ADMIN,
                exclude_user=decider.id,
                limit=limit,
            )
            return [record(r) for r in rows]

    def approvers_for(self, request: RequestRecord) -> list[UserRecord]:
        """Active managers of the request's pod, or the admins when the pod has none.

        The requester never counts: when a pod's only manager asks, the admins decide. Once
        step 1 of a two-step approval is given, the second approval's group is asked instead.
        """
        with self.sessions() as session:
            second = self.policies.second_approvers(session, request)
            if second:
                return second
            managers = repo.active_managers_of_pod(session, request.pod_id)
            people = [u for u in managers if u.id != request.requester.id]
            if not people:
                people = [u for u in repo.active_admins(session) if u.id != request.requester.id]
            return [UserRecord.of(u) for u in people]

    def counts_by_status(self) -> dict[str, int]:
        with self.sessions() as session:
            return repo.count_by_status(session)

    # --- submit ------------------------------------------------------------------------------

    def submit(self, requester_id: uuid_mod.UUID, submission: Submission):
        """Validate and store a new pending request. Returns (record, analysis)."""
        from core.analysis import AnalysisError
        from core.analysis_sandbox import analyse_isolated

        instance, database = self._resolve_target(submission.target)
        content, field = self._content_of(submission)
        comments = (submission.comments or "").strip() or None
        if comments and len(comments) > COMMENTS_MAX_CHARS:
            raise InvalidSubmission(
                "comments", f"comments are limited to {COMMENTS_MAX_CHARS:,} characters"
            )
        try:
            analysis = analyse_isolated(
                instance.type.value,
                content,
                submission.submission_type,
                allow_server_js=instance.allow_server_js,
            )
        except AnalysisError as exc:
            raise InvalidSubmission(field, str(exc)) from None
        run_after = self.policies.check_run_after(submission.run_after)
        rerun_of = self._rerun_source_id(submission.rerun_of, requester_id)
        pending_assessment = self.policies.assess_in_background(
            instance, database, analysis, content, submission.submission_type
        )
        assessment = _within(pending_assessment, self.assess_wait_s)

        with self.sessions.begin() as session:
            user = repo.user_by_id(session, requester_id)
            if user is None or not user.is_active:
                raise NotRegistered("you are not an active dbquery user; ask an admin to add you")
            if not user.pod_id:
                raise NotAllowed("you belong to no pod; ask an admin to set your pod")
            pod = self.catalogue.pod(user.pod_id)
            row = QueryRequest(
                uuid=uuid_mod.uuid4(),
                user_id=user.id,
                database_type=instance.type.value,
                instance_id=instance.id,
                instance_name=instance.name,
                database_name=database,
                submission_type=submission.submission_type,
                query_content=content if field == "query" else None,
                script_filename=submission.script_filename if field == "script" else None,
                script_content=content if field == "script" else None,
                comments=comments,
                pod_id=user.pod_id,
                pod_name=pod.name if pod else user.pod_id,
                status=Status.PENDING,
            )
            session.add(row)
            session.flush()
            record = RequestRecord.of(row, user, None)
            policy = self.policies.start(
                session, record, analysis, assessment, run_after=run_after, rerun_of=rerun_of
            )
            if policy is not None:
                session.expire(row)  # the policy's approval was a direct UPDATE of the row
                record = self.rows.by_id(session, row.id)
        if policy is not None:
            # Approved by policy: nobody is asked; the APPROVED event names the policy.
            self.rows.announce(EventKind.SUBMITTED, record)
            self.rows.announce_move(record)
        else:
            self.rows.announce(EventKind.SUBMITTED, record, approvers=self.approvers_for(record))
        if assessment is None:
            pending_assessment.add_done_callback(
                lambda done: self._assessed_late(record.id, analysis, done)
            )
        return record, analysis

    def reassess_stale(self, older_than: timedelta = timedelta(minutes=1)) -> list[RequestRecord]:
        """Estimate again the pending requests whose estimate was lost (a restart meanwhile)."""
        from core.analysis import AnalysisError
        from core.analysis_sandbox import analyse_stored

        with self.sessions() as session:
            ids = approvals_repo.unassessed_pending_ids(session, utcnow() - older_than)
            stale = [self.rows.by_id(session, i) for i in ids]
        done = []
        for request in stale:
            instance = self.catalogue.instance(request.instance_id)
            if instance is None:
                continue
            try:
                analysis = analyse_stored(self.catalogue, request, isolated=False)
            except AnalysisError:
                continue
            assessment = self.policies.assess(
                instance, request.database_name, analysis, request.content, request.submission_type
            )
            self._record_assessment(request.id, analysis, assessment)
            done.append(request)
        return done

    def _assessed_late(self, request_id: int, analysis, done: Future[Assessment]) -> None:
        """Record an estimate that outlived submit's wait (runs in the estimate's thread)."""
        self._record_assessment(request_id, analysis, done.result())

    def _record_assessment(self, request_id: int, analysis, assessment: Assessment) -> None:
        """Store a pending request's risk and estimate, apply the rules, tell the surfaces."""
        try:
            with self.sessions.begin() as session:
                record = self.rows.by_id(session, request_id)
                policy = self.policies.assessed(session, record, analysis, assessment)
                record = self.rows.by_id(session, request_id)
        except Exception:
            # In the estimate's thread nobody else would see the failure; the request stays
            # pending with no estimate (its approvers are shown so) and is estimated again.
            log.exception("recording the estimate of request #%s failed", request_id)
            return
        if policy is not None:
            self.rows.announce_move(record)
        else:
            self.rows.announce(EventKind.ASSESSED, record)

    def _rerun_source_id(self, rerun_of: str | None, requester_id: uuid_mod.UUID) -> int | None:
        if not rerun_of:
            return None
        try:
            return self.rerun_source(rerun_of, requester_id).id
        except (NotFound, NotAllowed) as exc:
            raise InvalidSubmission("target", exc.message) from None

    def rerun_source(self, request_uuid: uuid_mod.UUID | str, person_id: uuid_mod.UUID):
        """The request to run again, when this person may see it (they submit it as theirs)."""
        with self.sessions() as session:
            request = self.rows.load(session, as_uuid(request_uuid))
            person = repo.user_by_id(session, person_id)
            if person is None:
                raise NotRegistered("you are not an active dbquery user; ask an admin to add you")
            reason = why_cannot_view(
                person, requester_id=request.requester.id, request_pod=request.pod_id
            )
            if reason:
                raise NotAllowed(f"You can't run request {request.short_id} again: {reason}.")
            return request

    def policy_state(self, request: RequestRecord) -> PolicyState | None:
        """Risk, estimate, approval steps and schedule of a request (None before they exist)."""
        with self.sessions() as session:
            return self.policies.state(session, request.id)

    def policy_states(self, requests: list[RequestRecord]) -> dict[int, PolicyState | None]:
        """policy_state of each request, by request id, read in one session."""
        with self.sessions() as session:
            return {r.id: self.policies.state(session, r.id) for r in requests}

    def expire_stale(self) -> list[RequestRecord]:
        """Reject pending requests past their decision time; tell requester and approvers."""
        with self.sessions.begin() as session:
            ids = self.policies.expire_due(session)
            expired = [self.rows.by_id(session, i) for i in ids]
        for request in expired:
            self.rows.announce(EventKind.REJECTED, request, approvers=self.approvers_for(request))
        return expired

    def _resolve_target(self, target: str):
        instance_id, sep, database = (target or "").partition("/")
        instance = self.catalogue.instance(instance_id) if sep else None
        if instance is None or database not in instance.databases:
            raise InvalidSubmission("target", f"unknown target {target!r}; pick one from the list")
        return instance, database

    @staticmethod
    def _content_of(submission: Submission) -> tuple[str, str]:
        if submission.submission_type == SubmissionType.QUERY:
            text = (submission.query or "").strip()
            if not text:
                raise InvalidSubmission("query", "enter a query to run")
            if _size(text) > QUERY_MAX_BYTES:
                raise InvalidSubmission(
                    "query", "the query is over 100 KB; attach it as a script instead"
                )
            return text, "query"
        if submission.submission_type == SubmissionType.SCRIPT:
            if not submission.script_filename or submission.script_content is None:
                raise InvalidSubmission("script", "attach a script file (.sql, .js or .txt)")
            if _size(submission.script_content) > SCRIPT_MAX_BYTES:
                raise InvalidSubmission("script", SCRIPT_TOO_LARGE)
            if not submission.script_content.strip():
                raise InvalidSubmission("script", "the script file is empty")
            return submission.script_content, "script"
        raise InvalidSubmission("submission_type", "choose a query or a script")

    # --- decisions ---------------------------------------------------------------------------

    def approve(self, request_uuid: uuid_mod.UUID | str, decider_id: uuid_mod.UUID):
        return self._decide(request_uuid, decider_id, Status.APPROVED, None)

    def reject(self, request_uuid: uuid_mod.UUID | str, decider_id: uuid_mod.UUID, reason: str):
        reason = (reason or "").strip()
        if not reason:
            raise InvalidSubmission("reason", "give a reason for the rejection")
        if len(reason) > REASON_MAX_CHARS:
            raise InvalidSubmission(
                "reason", f"the reason is limited to {REASON_MAX_CHARS:,} characters"
            )
        return self._decide(request_uuid, decider_id, Status.REJECTED, reason)

    def check_may_decide(self, request_uuid: uuid_mod.UUID | str, decider_id: uuid_mod.UUID):
        """Raise NotAllowed/InvalidTransition now (e.g. before asking for a rejection's reason)."""
        with self.sessions() as session:
            request = self.rows.load(session, as_uuid(request_uuid))
            self._authorise(session, request, decider_id)
            if request.status != Status.PENDING:
                raise _already_decided(request)
            return request

    def _decide(self, request_uuid, decider_id, to_status: Status, reason: str | None):
        step = None
        with self.sessions.begin() as session:
            request = self.rows.load(session, as_uuid(request_uuid))
            decider = self._authorise(session, request, decider_id)
            if request.status != Status.PENDING:
                raise _already_decided(request)
            if to_status == Status.APPROVED:
                step = self._approve_step(session, request, decider)
            else:
                now = self.clock()
                values = {
                    "approver_id": decider_id,
                    "approver_email": decider.email,
                    "updated_at": now,
                    "rejected_at": now,
                    "rejection_reason": reason,
                }
                if not self.rows.move(session, request.id, Status.PENDING, to_status, **values):
                    # Nothing was written; reload what the winner wrote, not this session's copy.
                    session.expire_all()
                    raise _already_decided(self.rows.load(session, request.uuid))
            decided = self.rows.by_id(session, request.id)
            waiting = step is not None and not step.approved
            second = self.policies.second_approvers(session, decided) if waiting else []
        if waiting:
            self.rows.announce(EventKind.STEP_APPROVED, decided, approvers=second)
        else:
            self.rows.announce_move(decided)
        return decided

    def _approve_step(self, session: Session, request: RequestRecord, decider: User):
        kind = self._kind_of(request) or "admin"  # unreadable: held like the most serious kind
        try:
            return self.policies.approve_step(session, request, decider, kind)
        except (InvalidTransition, NotAllowed):
            # Lost a race (or clicked twice): once the request moved on, say who decided.
            session.expire_all()
            current = self.rows.load(session, request.uuid)
            if current.status != Status.PENDING:
                raise _already_decided(current) from None
            raise

    def _kind_of(self, request: RequestRecord) -> str | None:
        return kind_of(self.catalogue, request)

    def _authorise(self, session: Session, request: RequestRecord, decider_id) -> User:
        """The decider, when they may decide this request.

        At the second step of a two-step approval, the second approval's group (admins, or
        a pod's managers) may decide too, even from another pod; never the requester.
        """
        decider = repo.user_by_id(session, decider_id)
        if decider is None:
            raise NotRegistered("you are not a dbquery user")
        reason = why_cannot_decide(
            decider, requester_id=request.requester.id, request_pod=request.pod_id
        )
        if reason and self._second_step_group_member(session, request, decider):
            reason = None
        if reason:
            raise NotAllowed(f"You can't decide this request: {reason}.")
        return decider

    def _second_step_group_member(
        self, session: Session, request: RequestRecord, decider: User
    ) -> bool:
        if not decider.is_active or decider.id == request.requester.id:
            return False
        state = approvals_repo.request_policy(session, request.id)
        if state is None or state.approvals_required < 2:
            return False
        if not approvals_repo.approval_steps(session, request.id):
            return False
        group = state.second_approval_group
        return decider.role == Role.MANAGER and decider.pod_id == group

    def due_reminders(
        self, remind_after: timedelta, escalate_after: timedelta
    ) -> list[tuple[RequestRecord, bool]]:
        """Pending requests whose approvers are due a reminder, each marked as reminded now.

        The bool says whether the admins are due to be told as well (once per request).
        """
        now = self.clock()
        due = []
        with self.sessions() as session:
            candidates = [record(r) for r in repo.pending_older_than(session, now - remind_after)]
        for request in candidates:
            with self.sessions.begin() as session:
                state = repo.reminder_state_for_update(session, request.id)
                remind = state.reminded_at is None or now - state.reminded_at >= remind_after
                escalate = state.escalated_at is None and now - request.created_at >= escalate_after
                if not (remind or escalate):
                    continue
                if remind:
                    state.reminded_at = now
                if escalate:
                    state.escalated_at = now
            due.append((request, escalate))
            approvers = tuple(self.approvers_for(request))
            self.rows.announce(EventKind.REMINDED, request, approvers, at=now)
            if escalate:
                with self.sessions() as session:
                    admins = tuple(UserRecord.of(u) for u in repo.active_admins(session))
                self.rows.announce(EventKind.ESCALATED, request, approvers, admins, now)
        return due


def kind_of(catalogue: Catalogue, request: RequestRecord) -> str | None:
    """A stored request's kind as its analysis gives it now; None when it no longer parses.

    The text passed the isolated analysis at submit; the executor analyses it in-process the
    same way before it runs.
    """
    from core.analysis import AnalysisError
    from core.analysis_sandbox import analyse_stored

    try:
        return analyse_stored(catalogue, request, isolated=False).kind
    except AnalysisError:
        return None


def _within(pending: Future[Assessment], wait_s: float) -> Assessment | None:
    try:
        return pending.result(timeout=wait_s)
    except FutureTimeout:
        return None


def _already_decided(request: RequestRecord) -> InvalidTransition:
    who = request.approver.name if request.approver else "someone"
    if request.status == Status.REJECTED:
        text = f"Already rejected by {who}"
    elif request.status == Status.PENDING:
        text = "The request changed meanwhile; try again"
    else:
        when = f" at {request.approved_at:%Y-%m-%d %H:%M} UTC" if request.approved_at else ""
        text = f"Already approved by {who}{when} (now {request.status})"
    return InvalidTransition(text, request.status)


__all__ = ["RequestService", "Submission"]
