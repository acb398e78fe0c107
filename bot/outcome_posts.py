"""The outcome of a request posted under the requester's card: the one Slack post that must land.

The worker calls deliver_outcome from its outcome-delivery queue and retries it while it
raises. Before giving up, a post waits out Slack's rate limits for as long as Slack asks, so
an outcome lands as soon as Slack accepts calls again. Each piece (the reply, the file) is
posted once, however often the delivery is retried.
"""

from __future__ import annotations

import itertools
import logging
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from slack_sdk.errors import SlackApiError

from bot.file_upload import stream_file
from bot.messages import MessageRef
from bot.views.results import needs_file, outcome_message, result_file_name
from core.jobs import DELIVERY_LEASE
from core.lifecycle import Status
from core.records import RequestRecord

log = logging.getLogger("dbquery.notify")

# A delivery waits out rate limits only while its claim on the outcome holds (the worker's
# delivery lease), with a margin, so no other attempt can start and post it a second time.
RATE_LIMIT_PATIENCE_S = DELIVERY_LEASE.total_seconds() * 2 / 3
# Waits when a 429 carries no Retry-After (Slack always sends one; a proxy may not).
RATE_LIMIT_BACKOFF_S = (1.0, 2.0, 4.0, 8.0)
UPLOAD_TIMEOUT_S = 120  # between two chunks on the socket, not for the whole file


def retry_after_s(exc: SlackApiError) -> float | None:
    """The wait a 429 asks for (Retry-After, in seconds), or None when it names none."""
    headers = getattr(exc.response, "headers", None) or {}
    for key, value in headers.items():
        if key.lower() == "retry-after":
            raw = value[0] if isinstance(value, list) else value
            try:
                return max(0.0, float(raw))
            except (TypeError, ValueError):
                return None
    return None


def is_rate_limited(exc: Exception) -> bool:
    return isinstance(exc, SlackApiError) and getattr(exc.response, "status_code", None) == 429


class OutcomePosts:
    """deliver_outcome and its pieces; mixed into bot.notifier.SlackNotifier, whose card,
    message refresh, audit and per-request lock it uses."""

    def deliver_outcome(self, request: RequestRecord, result_file: Path | None) -> None:
        with self._request_lock(request.id):
            card = self.refs.card(request.id) or self._patiently(self.post_card, request)
        if card is None:
            log.warning(
                "request %s: the requester is not on Slack; outcome not posted", request.uuid
            )
            return
        self._refresh_messages(request, card=card)
        attach = result_file is not None and result_file.is_file() and needs_file(request)
        self.post_outcome_thread(request, card, result_file if attach else None)
        if request.status in (Status.COMPLETED, Status.FAILED):
            self._audit(request, str(request.status))

    def post_outcome_thread(
        self, request: RequestRecord, card: MessageRef, result_file: Path | None
    ) -> None:
        """The outcome as a reply under the card; a large result follows as a file in the thread.

        Each piece is posted once: when the file upload fails after the reply went out, the
        retry finds the reply recorded and uploads only the file.
        """
        if self.refs.outcome_reply(request.id) is None:
            message = outcome_message(request, file_attached=result_file is not None)
            posted = self._patiently(
                self.client.chat_postMessage, channel=card.channel_id, thread_ts=card.ts, **message
            )
            self.refs.save_outcome_reply(request.id, posted["ts"])
        if result_file is None:
            return
        self.upload_into_thread(request, card, result_file)

    def upload_into_thread(self, request: RequestRecord, card: MessageRef, path: Path) -> None:
        """Slack's external upload: ask for an upload URL, stream the file, then share it.

        The file goes from disk to the socket in chunks, so memory stays flat whatever its size.
        """
        length = path.stat().st_size
        filename = result_file_name(request, path.suffixes)
        target = self._patiently(
            self.client.files_getUploadURLExternal, filename=filename, length=length
        )
        stream_file(
            target["upload_url"], path, timeout=UPLOAD_TIMEOUT_S, ssl_context=self.client.ssl
        )
        self._patiently(
            self.client.files_completeUploadExternal,
            files=[
                {
                    "id": target["file_id"],
                    "title": f"Result of {request.short_id} · {request.target_label}",
                }
            ],
            channel_id=card.channel_id,
            thread_ts=card.ts,
        )

    def _patiently(self, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """`call`, repeated while Slack answers 429, after the wait Slack asks for each time.

        Gives up (raising the 429) when the next wait would pass the patience budget; the
        worker's redelivery takes over from there. A 429 means Slack did nothing, so calling
        again cannot post twice.
        """
        deadline = time.monotonic() + self.rate_limit_patience_s
        for attempt in itertools.count():
            try:
                return call(*args, **kwargs)
            except SlackApiError as exc:
                if not is_rate_limited(exc):
                    raise
                asked = retry_after_s(exc)
                wait = (
                    asked
                    if asked is not None
                    else RATE_LIMIT_BACKOFF_S[min(attempt, len(RATE_LIMIT_BACKOFF_S) - 1)]
                )
                # A little jitter, so replicas waiting on one limit do not all call at once.
                wait += random.uniform(0, 0.2)
                if time.monotonic() + wait > deadline:
                    raise
                log.info("Slack rate limit on %s; calling again in %.1f s", _name(call), wait)
                time.sleep(wait)
        raise AssertionError("itertools.count() never ends")


def _name(call: Callable[..., Any]) -> str:
    return getattr(call, "__name__", "a Slack call")
