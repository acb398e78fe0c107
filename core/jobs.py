"""Scheduled work inside `serve`: dispatch approved requests, deliver outcomes, remind, clean up.

What happens after an approval: the worker hears APPROVED on core.events and wakes its
dispatcher, which claims the request (published as STARTED), runs it, records the outcome
(COMPLETED or FAILED) and delivers it to the requester through the outcome-delivery queue. A
rejection (REJECTED) is delivered through the same queue. Everything else people are told
follows from the events, by each surface's subscriber.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from core.auth import forget_expired_sign_ins
from core.errors import InvalidTransition
from core.events import Event, EventBus, EventKind, LifecycleEvent
from core.notify import OutcomeDelivery
from core.records import RequestRecord
from core.wiring import Core
from db.locks import Lease

log = logging.getLogger("dbquery.worker")

DISPATCH_EVERY_S = 2
DELIVERY_LEASE = timedelta(seconds=60)  # also the wait before a failed post is retried
DELIVERY_MAX_ATTEMPTS = 10
# What the portal database raises when it is down or unreachable (not a bug in a query).
PORTAL_UNAVAILABLE = (OperationalError, InterfaceError, PoolTimeout)


class Worker:
    def __init__(
        self,
        core: Core,
        outcomes: OutcomeDelivery,
        *,
        on_finished: Callable[[RequestRecord, float], None] | None = None,
    ) -> None:
        self.core = core
        self.queue = core.queue
        self.deliveries = core.deliveries
        self.outcomes = outcomes
        self.on_finished = on_finished
        size = core.settings.workers
        self.pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix="dbquery-exec")
        # Rejections are delivered here, off the thread that published the decision.
        self.delivery_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="dbquery-deliver")
        # Claim only what a free thread can start now: a claimed row waiting in a queue would
        # be marked interrupted (and never run) if the process died.
        self.slots = threading.BoundedSemaphore(size)
        self.wanted = threading.Event()
        self.idle = threading.Condition()
        self.running = 0
        self.scheduler = BackgroundScheduler(timezone=UTC)
        # Dispatch has a thread of its own rather than an APScheduler job: wake-ups then only
        # set a flag, however many arrive while a dispatch runs (a job moved to "now" while it
        # runs is refused as "maximum number of running instances reached", once per click).
        self._stopping = threading.Event()
        self._dispatcher: threading.Thread | None = None

    # --- life cycle ------------------------------------------------------------------------

    def start(self) -> None:
        self.recover_interrupted()
        now = datetime.now(UTC)
        common = {"max_instances": 1, "coalesce": True}
        self.scheduler.add_job(
            _quiet_when_portal_down(self.retry_deliveries),
            "interval",
            seconds=30,
            id="deliveries",
            **common,
        )
        self.scheduler.add_job(
            _quiet_when_portal_down(self.send_reminders),
            "interval",
            seconds=60,
            id="reminders",
            **common,
        )
        if self.queue.leases.shared:
            # Another replica may die mid-execution: its leases free up and this one fails them.
            self.scheduler.add_job(
                _quiet_when_portal_down(self.recover_interrupted),
                "interval",
                seconds=60,
                id="recovery",
                **common,
            )
        self.scheduler.add_job(
            _quiet_when_portal_down(self.expire_stale),
            "interval",
            seconds=60,
            id="expiry",
            next_run_time=now,
            **common,
        )
        self.scheduler.add_job(
            _quiet_when_portal_down(self.cleanup_tokens),
            "interval",
            hours=1,
            id="cleanup",
            next_run_time=now,
            **common,
        )
        self.scheduler.start()
        self._stopping.clear()
        self._dispatcher = threading.Thread(
            target=self._dispatch_until_stopped, name="dbquery-dispatch", daemon=True
        )
        self._dispatcher.start()

    def subscribe(self, events: EventBus) -> Callable[[], None]:
        """Act on decisions made anywhere: wake on an approval, deliver a rejection."""
        return events.subscribe("worker", self._on_event)

    def _on_event(self, event: Event) -> None:
        if not isinstance(event, LifecycleEvent):
            return
        if event.kind == EventKind.APPROVED:
            self.wake()
        elif event.kind == EventKind.REJECTED:
            self.delivery_pool.submit(self._deliver_quietly, event.request.id)

    def _deliver_quietly(self, request_id: int) -> None:
        try:
            self.deliver_outcome_now(request_id)
        except PORTAL_UNAVAILABLE as exc:
            # Still queued: retry_deliveries posts it once the portal database answers.
            log.warning(
                "delivering a rejection: the portal database did not answer (%s)",
                type(exc).__name__,
            )
        except Exception:
            log.exception("delivering a rejection failed; it stays queued")

    def wake(self) -> None:
        """Run the dispatcher now (after an approval) instead of at its next tick.

        Wake-ups that arrive while it runs coalesce into one more look."""
        self.wanted.set()

    def shutdown(self, wait: bool = True) -> None:
        self._stopping.set()
        self.wanted.set()
        if self._dispatcher is not None:
            self._dispatcher.join()
            self._dispatcher = None
        if self.scheduler.running:
            self.scheduler.shutdown(wait=wait)
        self.pool.shutdown(wait=wait)
        self.delivery_pool.shutdown(wait=wait)

    def _dispatch_until_stopped(self) -> None:
        while not self._stopping.is_set():
            try:
                self.dispatch()
            except Exception:
                log.exception("dispatching approved requests failed")
            self.wanted.wait(timeout=DISPATCH_EVERY_S)

    def wait_idle(self, timeout: float) -> bool:
        """True once no request is executing (used by graceful shutdown and tests)."""
        with self.idle:
            return self.idle.wait_for(lambda: self.running == 0, timeout=timeout)

    def recover_interrupted(self) -> int:
        recovered = self.queue.recover_interrupted()
        for request in recovered:
            log.warning("request %s was interrupted (its worker died); marked failed", request.uuid)
            self.deliver_outcome_now(request.id)
        return len(recovered)

    # --- dispatch ----------------------------------------------------------------------------

    def dispatch(self) -> int:
        """Claim approved requests while threads are free; returns how many were started."""
        started = 0
        while not self._stopping.is_set():
            self.wanted.clear()
            while self.slots.acquire(blocking=False):
                try:
                    claimed = self.queue.claim_next_approved()
                except PORTAL_UNAVAILABLE as exc:
                    # Every tick while the portal database is down: one line, no traceback.
                    self.slots.release()
                    log.warning(
                        "could not claim approved requests: the portal database did not"
                        " answer (%s)",
                        type(exc).__name__,
                    )
                    return started
                except Exception:
                    self.slots.release()
                    log.exception("could not claim approved requests")
                    return started
                if claimed is None:
                    self.slots.release()
                    break
                with self.idle:
                    self.running += 1
                self.pool.submit(self._execute, *claimed)
                started += 1
            # A wake() that arrived while claiming may concern a row committed after our last
            # look: look once more rather than wait for the next tick.
            if not self.wanted.is_set():
                return started
        return started

    def _execute(self, request: RequestRecord, lease: Lease) -> None:
        began = datetime.now(UTC)
        try:
            try:
                outcome = self.core.runner.run(request)
                result_json, error, result_file = (
                    outcome.result_json,
                    outcome.error,
                    outcome.result_file,
                )
            except Exception as exc:
                log.exception("request %s: the executor failed unexpectedly", request.uuid)
                result_json, error, result_file = (
                    None,
                    f"internal error ({type(exc).__name__})",
                    None,
                )
            try:
                finished = self.queue.finish(
                    request.id, result_json=result_json, error=error, result_file=result_file
                )
            finally:
                lease.release()
            if self.on_finished:
                self._safely(
                    self.on_finished, finished, (datetime.now(UTC) - began).total_seconds()
                )
            self.deliver_outcome_now(finished.id)
        except Exception:
            log.exception("request %s: could not record its outcome", request.uuid)
        finally:
            with self.idle:
                self.running -= 1
                self.idle.notify_all()
            self.slots.release()
            self.wake()

    # --- outcomes ----------------------------------------------------------------------------

    def deliver_outcome_now(self, request_id: int) -> bool:
        """Deliver the outcome to the requester; a failure stays queued for a retry."""
        try:
            request, result_file = self.deliveries.claim(request_id, DELIVERY_LEASE)
        except InvalidTransition:
            return False
        try:
            self.outcomes.deliver_outcome(request, Path(result_file) if result_file else None)
        except Exception as exc:
            log.warning(
                "request %s: posting the outcome failed (%s); will retry",
                request.uuid,
                type(exc).__name__,
            )
            self.deliveries.done(request_id, error=f"{type(exc).__name__}: {exc}")
            return False
        self.deliveries.done(request_id)
        return True

    def retry_deliveries(self) -> int:
        delivered = 0
        for request_id in self.deliveries.undelivered(DELIVERY_LEASE, DELIVERY_MAX_ATTEMPTS):
            delivered += self.deliver_outcome_now(request_id)
        return delivered

    # --- reminders and clean-up ----------------------------------------------------------------

    def send_reminders(self) -> int:
        """Mark the requests due a reminder; core.events tells the approvers (and admins)."""
        settings = self.core.settings
        due = self.core.requests.due_reminders(
            timedelta(minutes=settings.remind_after_min),
            timedelta(minutes=settings.escalate_after_min),
        )
        return len(due)

    def expire_stale(self) -> int:
        """Reject requests pending past their policy's expire_after_h (REJECTED tells everyone:
        this worker delivers the reason, the surfaces update their messages).

        Also estimates again the pending requests whose estimate a restart lost."""
        self.core.requests.reassess_stale()
        return len(self.core.requests.expire_stale())

    def cleanup_tokens(self) -> int:
        removed = self.core.users.expire_tokens(self.core.queue.clock())
        removed += forget_expired_sign_ins(self.core.sessions)
        if removed:
            log.info("removed %d expired token rows", removed)
        return removed

    @staticmethod
    def _safely(call: Callable, *args) -> None:
        try:
            call(*args)
        except Exception:
            log.exception("%s failed", getattr(call, "__name__", "notification"))


def _quiet_when_portal_down(job: Callable[[], int]) -> Callable[[], int]:
    """The job, logging one line instead of a traceback while the portal database is down
    (the job runs again at its next tick)."""

    def run() -> int:
        try:
            return job()
        except PORTAL_UNAVAILABLE as exc:
            log.warning(
                "%s: the portal database did not answer (%s)", job.__name__, type(exc).__name__
            )
            return 0

    run.__name__ = job.__name__
    return run
