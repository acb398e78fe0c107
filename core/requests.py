"""The request service: every call is one transaction and every status change one atomic write."""

from __future__ import annotations

import logging
import uuid as uuid_mod
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from core.approvals import ApprovalPolicies, Assessment, PolicyState
from core.catalogue import Catalogue
from core.errors import InvalidSubmission, InvalidTransition, NotAllowed, NotFound, NotRegistered
from core.events import KIND_OF_STATUS, EventBus, EventKind, LifecycleEvent
from core.lifecycle import (
    Role,
    Status,
    SubmissionType,
    is_legal,
    why_cannot_decide,
    why_cannot_view,
)
from core.records import RequestRecord, UserRecord
from db import approval_repository as approvals_repo
from db import repository as repo
from db.locks import ExecutionLeases, Lease
from db.models import QueryRequest, User, utcnow
from db.session import Sessions

log = logging.getLogger("dbquery.requests")

QUERY_MAX_BYTES = 100 * 1024
SCRIPT_MAX_BYTES = 1024 * 1024
COMMENTS_MAX_CHARS = 3_000
REASON_MAX_CHARS = 3_000
INTERRUPTED = "interrupted: the worker stopped while this request was executing; it was not re-run"
# How long submit waits for the cost estimate before it announces the request without it
# (the estimate then follows as an ASSESSED event); short enough for Slack's 3 s modal ack.
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


def _record(row) -> RequestRecord:
    request, requester, approver = row
    return RequestRecord.of(request, requester, approver)


def _size(text: str) -> int:
    return len(text.encode("utf-8"))


class RequestService:
    def __init__(
        self,
        sessions: Sessions,
        catalogue: Catalogue,
        clock: Callable[[], datetime] = utcnow,
        events: EventBus | None = None,
        policies: ApprovalPolicies | None = None,
        assess_wait_s: float = ASSESS_WAIT_S,
    ) -> None:
        self.sessions = sessions
        self.catalogue = catalogue
        self.clock = clock
        self.events = events or EventBus()
        self.leases = ExecutionLeases(sessions.engine)
        self.policies = policies or ApprovalPolicies(catalogue, None, clock)
        self.assess_wait_s = assess_wait_s

    # --- reading -----------------------------------------------------------------------------

    def get(self, request_uuid: uuid_mod.UUID | str) -> RequestRecord:
        with self.sessions() as session:
            return self._load(session, _as_uuid(request_uuid))

    def get_by_id(self, request_id: int) -> RequestRecord:
        with self.sessions() as session:
            row = repo.request_by_id_with_people(session, request_id)
            if row is None:
                raise NotFound(f"request #{request_id} does not exist")
            return _record(row)

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
        return _record(rows[0])

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
            return [_record(r) for r in rows]

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
            return [_record(r) for r in rows]

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

    def admins(self) -> list[UserRecord]:
        with self.sessions() as session:
            return [UserRecord.of(u) for u in repo.active_admins(session)]

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
                record = _record(repo.request_by_id_with_people(session, row.id))
        if policy is not None:
            # Approved by policy: nobody is asked; the card and the audit line say which.
            self._announce(EventKind.SUBMITTED, record)
            self._announce_move(record)
        else:
            self._announce(EventKind.SUBMITTED, record, approvers=self.approvers_for(record))
        if assessment is None:
            pending_assessment.add_done_callback(
                lambda done: self._assessed_late(record.id, analysis, done)
            )
        return record, analysis

    def reassess_stale(self, older_than: timedelta = timedelta(minutes=1)) -> list[RequestRecord]:
        """Estimate again the pending requests whose estimate was lost (a restart meanwhile)."""
        from core.analysis import AnalysisError, analyse

        with self.sessions() as session:
            ids = approvals_repo.unassessed_pending_ids(session, utcnow() - older_than)
            stale = [_record(repo.request_by_id_with_people(session, i)) for i in ids]
        done = []
        for request in stale:
            instance = self.catalogue.instance(request.instance_id)
            if instance is None:
                continue
            try:
                analysis = analyse(
                    instance.type.value,
                    request.content,
                    request.submission_type,
                    allow_server_js=instance.allow_server_js,
                )
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
                record = _record(repo.request_by_id_with_people(session, request_id))
                policy = self.policies.assessed(session, record, analysis, assessment)
                record = _record(repo.request_by_id_with_people(session, request_id))
        except Exception:
            # In the estimate's thread nobody else would see the failure; the request stays
            # pending with no estimate (its approvers are shown so) and is estimated again.
            log.exception("recording the estimate of request #%s failed", request_id)
            return
        if policy is not None:
            self._announce_move(record)
        else:
            self._announce(EventKind.ASSESSED, record)

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
            request = self._load(session, _as_uuid(request_uuid))
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
                raise InvalidSubmission("script", "the script is over 1 MB")
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
        """Raise NotAllowed/InvalidTransition now (e.g. before opening the reject modal)."""
        with self.sessions() as session:
            request = self._load(session, _as_uuid(request_uuid))
            self._authorise(session, request, decider_id)
            if request.status != Status.PENDING:
                raise _already_decided(request)
            return request

    def _decide(self, request_uuid, decider_id, to_status: Status, reason: str | None):
        step = None
        with self.sessions.begin() as session:
            request = self._load(session, _as_uuid(request_uuid))
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
                if not repo.transition(session, request.id, Status.PENDING, to_status, **values):
                    # Nothing was written; reload what the winner wrote, not this session's copy.
                    session.expire_all()
                    raise _already_decided(self._load(session, request.uuid))
                repo.add_outcome_delivery(session, request.id, None)
            decided = _record(repo.request_by_id_with_people(session, request.id))
            second = (
                self.policies.second_approvers(session, decided)
                if step is not None and not step.approved
                else []
            )
        if step is not None and not step.approved:
            self._announce(EventKind.STEP_APPROVED, decided, approvers=second)
        else:
            self._announce_move(decided)
        return decided

    def _approve_step(self, session: Session, request: RequestRecord, decider: User):
        kind = self._kind_of(request) or "admin"  # unreadable: held like the most serious kind
        try:
            return self.policies.approve_step(session, request, decider, kind)
        except (InvalidTransition, NotAllowed):
            # Lost a race (or clicked twice): once the request moved on, say who decided.
            session.expire_all()
            current = self._load(session, request.uuid)
            if current.status != Status.PENDING:
                raise _already_decided(current) from None
            raise

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

    # --- execution ---------------------------------------------------------------------------

    def claim_next_approved(self) -> tuple[RequestRecord, Lease] | None:
        """Move the oldest approved request to executing, with the lease its executor holds.

        None when there is nothing to claim. Release the lease once the outcome is recorded.
        """
        for _ in range(20):
            with self._claiming() as claim:
                now = self.clock()
                request_id = approvals_repo.next_runnable_approved_id(claim.session, now)
                if request_id is None:
                    return None
                if not self._may_start(claim.session, request_id):
                    continue  # held (its window closed meanwhile); its next start is stored
                claim.take(request_id)
            if claim.won:
                self._announce_move(claim.won[0])
                return claim.won
        return None

    def claim(self, request_uuid: uuid_mod.UUID | str) -> tuple[RequestRecord, Lease]:
        """Claim one approved request, with its lease; InvalidTransition from any other status."""
        with self._claiming() as claim:
            request = self._load(claim.session, _as_uuid(request_uuid))
            if not is_legal(request.status, Status.EXECUTING):
                raise InvalidTransition(
                    f"a {request.status} request cannot become executing", request.status
                )
            claim.take(request.id)
        if claim.won is None:
            raise InvalidTransition(f"request {request.uuid} changed meanwhile")
        self._announce_move(claim.won[0])
        return claim.won

    def _may_start(self, session: Session, request_id: int) -> bool:
        request = _record(repo.request_by_id_with_people(session, request_id))
        kind = self._kind_of(request)
        if kind is None:
            return True  # the executor fails it with the reason
        return self.policies.may_claim(session, request, kind)

    def _kind_of(self, request: RequestRecord) -> str | None:
        """The stored request's kind as its analysis gives it now; None when it no longer parses.

        The text passed the isolated analysis at submit; the executor analyses it in-process
        the same way before it runs.
        """
        from core.analysis import AnalysisError, analyse

        instance = self.catalogue.instance(request.instance_id)
        try:
            return analyse(
                request.database_type,
                request.content,
                request.submission_type,
                allow_server_js=bool(instance and instance.allow_server_js),
            ).kind
        except AnalysisError:
            return None

    def expire_stale(self) -> list[RequestRecord]:
        """Reject pending requests past their decision time; tell requester and approvers."""
        with self.sessions.begin() as session:
            ids = self.policies.expire_due(session)
            expired = [_record(repo.request_by_id_with_people(session, i)) for i in ids]
        for request in expired:
            self._announce(EventKind.REJECTED, request, approvers=self.approvers_for(request))
        return expired

    @contextmanager
    def _claiming(self) -> Iterator[_Claim]:
        """One claim transaction; a lease taken in it is released unless the claim commits."""
        claim = _Claim(self)
        try:
            with self.sessions.begin() as session:
                claim.session = session
                yield claim
        except BaseException:
            if claim.won:
                claim.won[1].release()
            raise

    def finish(
        self,
        request_id: int,
        *,
        result_json: str | None = None,
        error: str | None = None,
        result_file: str | None = None,
    ) -> RequestRecord:
        """executing -> completed (with the result summary) or failed (with the error)."""
        with self.sessions.begin() as session:
            now = self.clock()
            to_status = Status.FAILED if error is not None else Status.COMPLETED
            if not repo.transition(
                session,
                request_id,
                Status.EXECUTING,
                to_status,
                execution_result=result_json,
                execution_error=error,
                execution_completed_at=now,
                updated_at=now,
            ):
                row = repo.request_by_id_with_people(session, request_id)
                if row is None:
                    raise NotFound(f"request #{request_id} does not exist")
                raise InvalidTransition(
                    f"request {row[0].uuid} is {row[0].status}, not executing", row[0].status
                )
            repo.add_outcome_delivery(session, request_id, result_file)
            finished = _record(repo.request_by_id_with_people(session, request_id))
        self._announce_move(finished)
        return finished

    def recover_interrupted(self) -> list[RequestRecord]:
        """Fail executions whose process is gone. Never re-run: a write could apply twice.

        Requests another live replica is executing keep their status (their lease is held).
        """
        recovered = []
        with self.sessions() as session:
            ids = list(repo.executing_ids(session))
        for request_id in ids:
            lease = self.leases.try_orphaned(request_id)
            if lease is None:
                continue
            try:
                recovered.append(self.finish(request_id, error=INTERRUPTED))
            except InvalidTransition:
                continue
            finally:
                lease.release()
        return recovered

    def transition(self, request_uuid, to_status: str, **values) -> RequestRecord:
        """A raw lifecycle step, legal steps only, atomically; it takes no execution lease.

        The worker claims with `claim_next_approved`; this serves tests and repairs.
        """
        return self._move(request_uuid, Status(to_status), **values)

    def _move(self, request_uuid, to_status: Status, **values) -> RequestRecord:
        with self.sessions.begin() as session:
            request = self._load(session, _as_uuid(request_uuid))
            if not is_legal(request.status, to_status):
                raise InvalidTransition(
                    f"a {request.status} request cannot become {to_status}", request.status
                )
            values.setdefault("updated_at", self.clock())
            if not repo.transition(session, request.id, request.status, to_status, **values):
                session.expire_all()
                current = self._load(session, request.uuid)
                raise InvalidTransition(
                    f"request {request.uuid} changed to {current.status} meanwhile", current.status
                )
            if to_status in (Status.REJECTED, Status.COMPLETED, Status.FAILED):
                repo.add_outcome_delivery(session, request.id, None)
            moved = _record(repo.request_by_id_with_people(session, request.id))
        self._announce_move(moved)
        return moved

    # --- helpers -----------------------------------------------------------------------------

    def _load(self, session: Session, request_uuid: uuid_mod.UUID) -> RequestRecord:
        row = repo.request_with_people(session, request_uuid)
        if row is None:
            raise NotFound(f"request {request_uuid} does not exist")
        return _record(row)

    def expire_tokens(self) -> int:
        with self.sessions.begin() as session:
            return repo.delete_expired_tokens(session, self.clock())

    def due_reminders(
        self, remind_after: timedelta, escalate_after: timedelta
    ) -> list[tuple[RequestRecord, bool]]:
        """Pending requests whose approvers are due a reminder, each marked as reminded now.

        The bool says whether the admins are due to be told as well (once per request).
        """
        now = self.clock()
        due = []
        with self.sessions() as session:
            candidates = [_record(r) for r in repo.pending_older_than(session, now - remind_after)]
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
            self._announce(EventKind.REMINDED, request, approvers, at=now)
            if escalate:
                self._announce(EventKind.ESCALATED, request, approvers, tuple(self.admins()), now)
        return due

    # --- events ------------------------------------------------------------------------------

    def _announce(
        self,
        kind: EventKind,
        request: RequestRecord,
        approvers: tuple[UserRecord, ...] | list[UserRecord] = (),
        admins: tuple[UserRecord, ...] = (),
        at: datetime | None = None,
    ) -> None:
        """Publish what a committed transaction did; call only once it has committed."""
        at = at or request.updated_at or request.created_at
        event = LifecycleEvent(kind, request, at, tuple(approvers), admins)
        self.events.publish(event)

    def _announce_move(self, request: RequestRecord) -> None:
        self._announce(KIND_OF_STATUS[request.status], request)

    # --- outcome delivery --------------------------------------------------------------------

    def claim_delivery(self, request_id: int, lease: timedelta) -> tuple[RequestRecord, str | None]:
        """The request and its result file when this caller may post its outcome now.

        Raises InvalidTransition when it was delivered already or another attempt is under way.
        """
        now = self.clock()
        with self.sessions.begin() as session:
            if not repo.claim_delivery_attempt(
                session, request_id, now=now, started_before=now - lease
            ):
                raise InvalidTransition("the outcome is delivered or being delivered")
            delivery = repo.outcome_delivery(session, request_id)
            record = _record(repo.request_by_id_with_people(session, request_id))
            return record, delivery.result_file

    def delivery_done(self, request_id: int, error: str | None = None) -> None:
        with self.sessions.begin() as session:
            delivery = repo.outcome_delivery(session, request_id)
            if error is None:
                delivery.delivered_at = self.clock()
                delivery.last_error = None
            else:
                # attempt_started_at stays: the lease doubles as the wait before the next retry.
                delivery.last_error = error[:1000]

    def undelivered(self, lease: timedelta, max_attempts: int) -> list[int]:
        with self.sessions() as session:
            return list(
                repo.undelivered_outcomes(
                    session, max_attempts=max_attempts, started_before=self.clock() - lease
                )
            )


class _Claim:
    """approved -> executing for one request id inside a claim transaction."""

    def __init__(self, service: RequestService) -> None:
        self.service = service
        self.session: Session
        self.won: tuple[RequestRecord, Lease] | None = None

    def take(self, request_id: int) -> None:
        # Taken before the claim commits: nobody can see this row executing unleased.
        lease = self.service.leases.acquire(request_id)
        try:
            now = self.service.clock()
            if repo.transition(
                self.session,
                request_id,
                Status.APPROVED,
                Status.EXECUTING,
                execution_started_at=now,
                updated_at=now,
            ):
                record = _record(repo.request_by_id_with_people(self.session, request_id))
                self.won = (record, lease)
                return
        except BaseException:
            lease.release()
            raise
        lease.release()


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


def _within(pending: Future[Assessment], wait_s: float) -> Assessment | None:
    try:
        return pending.result(timeout=wait_s)
    except FutureTimeout:
        return None


def _as_uuid(value: uuid_mod.UUID | str) -> uuid_mod.UUID:
    if isinstance(value, uuid_mod.UUID):
        return value
    try:
        return uuid_mod.UUID(str(value).strip())
    except ValueError:
        raise NotFound(f"{value!r} is not a request id") from None


__all__ = ["RequestService", "Submission", "INTERRUPTED"]
