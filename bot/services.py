"""What every listener is given, and the thread pools of the Slack surface.

Slack wants every payload acknowledged within 3 seconds, so work is spread over three pools:

* Bolt's listener pool (LISTENER_THREADS, in bot/app.py) runs the middleware and listeners up
  to their ack(). It must stay free for acknowledgements; its default (a handful of threads
  on a small host) is too few when the form checks of several submissions wait at once.
* The background pool (`Services.background`) runs work that races the acknowledgement: the
  check and storage of a submitted form (the listener waits for it up to its budget), a
  first-contact look-up of who is asking, a private refusal.
* The follow-up pool (`Services.follow_ups`) runs what comes after the acknowledgement: Slack
  calls of listeners and everything bot.subscriber does for core's events. Sized so a few
  calls sleeping through a rate limit do not hold up the rest (a modal must open within 3 s
  of its trigger), and small enough that a burst does not starve acknowledgements of CPU
  (benchmarks/ack.py: a p99 about a quarter higher with 32).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from bot.analyses import RecentAnalyses
from core.jobs import PORTAL_UNAVAILABLE
from core.wiring import Core

LISTENER_THREADS = 32
BACKGROUND_THREADS = 16
FOLLOW_UP_THREADS = 16

log = logging.getLogger("dbquery.bot")


@dataclass(frozen=True)
class Services:
    core: Core
    background: Executor
    follow_ups: Executor
    analyses: RecentAnalyses

    def after_ack(self, what: str, work: Callable[..., object], *args: Any) -> None:
        """Run `work(*args)` on the follow-up pool; the listener returns at once.

        Failures are logged with their traceback; raised inside a listener after ack(), they
        would also make Bolt discard the acknowledgement if it had not gone out yet.
        """
        self.follow_ups.submit(logged, what, work, *args)


def logged(what: str, work: Callable[..., object], *args: Any) -> None:
    """`work(*args)`, its failure logged: nobody is waiting for it to report one."""
    try:
        work(*args)
    except PORTAL_UNAVAILABLE as exc:
        log.warning("%s: the portal database did not answer (%s)", what, type(exc).__name__)
    except Exception:
        log.exception("%s failed", what)


def background_executor() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(BACKGROUND_THREADS, thread_name_prefix="dbquery-background")


def follow_up_executor() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(FOLLOW_UP_THREADS, thread_name_prefix="dbquery-follow-up")


__all__ = [
    "LISTENER_THREADS",
    "Services",
    "background_executor",
    "follow_up_executor",
    "logged",
]
