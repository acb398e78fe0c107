"""The analyses shown next to requests, kept for the requests rendered again and again."""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterable

from core.analysis import Analysis, AnalysisError
from core.analysis_sandbox import analyse_stored
from core.catalogue import Catalogue
from core.records import RequestRecord

ANALYSES_KEPT = 256


class RecentAnalyses:
    """Analyses by request uuid, least recently used dropped first.

    A request's content never changes, so its analysis never does; parsing a long script
    takes seconds, and the same request is rendered again and again (approval DMs, their
    updates, reminders, the Home tab, /dbquery pending).
    """

    def __init__(self, catalogue: Catalogue, max_entries: int = ANALYSES_KEPT) -> None:
        self.catalogue = catalogue
        self.max_entries = max_entries
        self._entries: OrderedDict[uuid.UUID, Analysis | None] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, request: RequestRecord, analysis: Analysis | None) -> None:
        """Keep the analysis made at submit time, so rendering the request does not redo it."""
        with self._lock:
            self._entries[request.uuid] = analysis
            self._entries.move_to_end(request.uuid)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def of(self, request: RequestRecord) -> Analysis | None:
        """The analysis of a stored request (None when it no longer parses)."""
        with self._lock:
            if request.uuid in self._entries:
                self._entries.move_to_end(request.uuid)
                return self._entries[request.uuid]
        try:
            analysis = analyse_stored(self.catalogue, request)
        except AnalysisError:
            analysis = None
        self.remember(request, analysis)
        return analysis

    def of_each(self, requests: Iterable[RequestRecord]) -> dict[uuid.UUID, Analysis]:
        """The analyses of those requests that still parse, by uuid."""
        found = {}
        for request in requests:
            analysis = self.of(request)
            if analysis is not None:
                found[request.uuid] = analysis
        return found


__all__ = ["ANALYSES_KEPT", "RecentAnalyses"]
