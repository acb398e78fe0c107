"""How an outcome reaches the person who asked: the one message core retries until it lands.

Everything else people are told follows from core.events; the outcome is different because it
must arrive exactly once even across restarts, so the worker drives it from the
outcome_deliveries queue and a surface implements the posting.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from core.records import RequestRecord


class OutcomeDelivery(Protocol):
    def deliver_outcome(self, request: RequestRecord, result_file: Path | None) -> None:
        """Tell the requester the result, the error or the rejection (with the file, if any).

        Raises when it could not be delivered; the worker keeps it queued and retries later.
        """
