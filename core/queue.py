"""The execution queue: approved requests claimed with a lease, finished, or recovered.

Each claim and each finish is one transaction with one conditional write; recovery looks at
every executing request and finishes, in a transaction of its own, those whose process is gone.
"""

from __future__ import annotations

import uuid as uuid_mod
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session

from core.approvals import ApprovalPolicies
from core.errors import InvalidTransition, NotFound
from core.lifecycle import Status, is_legal
from core.records import RequestRecord
from core.request_rows import RequestRows, UsesRequestRows, as_uuid
from core.requests import kind_of
from db import approval_repository as approvals_repo
from db import repository as repo
from db.locks import ExecutionLeases, Lease

INTERRUPTED = "interrupted: the worker stopped while this request was executing; it was not re-run"


class ExecutionQueue(UsesRequestRows):
    def __init__(self, rows: RequestRows, policies: ApprovalPolicies | None = None) -> None:
        self.rows = rows
        self.leases = ExecutionLeases(rows.sessions.engine)
        # Without policies, only a stored earliest start ("Run after", a window) holds a row.
        self.policies = policies

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
                self.rows.announce_move(claim.won[0])
                return claim.won
        return None

    def claim(self, request_uuid: uuid_mod.UUID | str) -> tuple[RequestRecord, Lease]:
        """Claim one approved request, with its lease; InvalidTransition from any other status."""
        with self._claiming() as claim:
            request = self.rows.load(claim.session, as_uuid(request_uuid))
            if not is_legal(request.status, Status.EXECUTING):
                raise InvalidTransition(
                    f"a {request.status} request cannot become executing", request.status
                )
            claim.take(request.id)
        if claim.won is None:
            raise InvalidTransition(f"request {request.uuid} changed meanwhile")
        self.rows.announce_move(claim.won[0])
        return claim.won

    def _may_start(self, session: Session, request_id: int) -> bool:
        if self.policies is None:
            return True
        request = self.rows.by_id(session, request_id)
        kind = kind_of(self.policies.catalogue, request)
        if kind is None:
            return True  # the executor fails it with the reason
        return self.policies.may_claim(session, request, kind)

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
            if not self.rows.move(
                session,
                request_id,
                Status.EXECUTING,
                to_status,
                result_file=result_file,
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
            finished = self.rows.by_id(session, request_id)
        self.rows.announce_move(finished)
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


class _Claim:
    """approved -> executing for one request id inside a claim transaction."""

    def __init__(self, queue: ExecutionQueue) -> None:
        self.queue = queue
        self.session: Session
        self.won: tuple[RequestRecord, Lease] | None = None

    def take(self, request_id: int) -> None:
        # Taken before the claim commits: nobody can see this row executing unleased.
        lease = self.queue.leases.acquire(request_id)
        try:
            now = self.queue.clock()
            if self.queue.rows.move(
                self.session,
                request_id,
                Status.APPROVED,
                Status.EXECUTING,
                execution_started_at=now,
                updated_at=now,
            ):
                self.won = (self.queue.rows.by_id(self.session, request_id), lease)
                return
        except BaseException:
            lease.release()
            raise
        lease.release()


__all__ = ["INTERRUPTED", "ExecutionQueue"]
