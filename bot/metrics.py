"""Prometheus metrics of one `serve` process, in a registry of its own (no import-time globals)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from slack_sdk.http_retry.handler import RetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState

from core.lifecycle import Status
from core.records import RequestRecord

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Executions range from milliseconds (a lookup) to the statement timeout (minutes).
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, float("inf"))

log = logging.getLogger("dbquery.metrics")


class RequestsByStatus(Collector):
    """Read from the portal database at scrape time, so every process reports the same truth."""

    def __init__(self, counts_by_status: Callable[[], dict[str, int]]) -> None:
        self.counts_by_status = counts_by_status

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauge = GaugeMetricFamily(
            "dbquery_requests", "Requests in the portal database by status", labels=["status"]
        )
        try:
            counts = self.counts_by_status()
        except Exception as exc:  # a scrape must not fail because the portal DB is down
            log.warning("cannot count requests for /metrics: %s", type(exc).__name__)
            return
        for status in Status:
            gauge.add_metric([status.value], counts.get(status.value, 0))
        yield gauge


class Metrics:
    def __init__(self, counts_by_status: Callable[[], dict[str, int]]) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(RequestsByStatus(counts_by_status))
        self.execution_seconds = Histogram(
            "dbquery_execution_duration_seconds",
            "Time from claiming an approved request to recording its outcome",
            ["database_type", "status"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.slack_api_errors = Counter(
            "dbquery_slack_api_errors",
            "Slack Web API calls answered with an error (including rate limits)",
            ["method", "error"],
            registry=self.registry,
        )
        self.slack_requests_refused = Counter(
            "dbquery_slack_requests_refused",
            "Requests to /slack/events refused before Bolt saw them (401 unsigned, 400 malformed)",
            ["status"],
            registry=self.registry,
        )

    def execution_finished(self, request: RequestRecord, seconds: float) -> None:
        self.execution_seconds.labels(request.database_type, request.status).observe(seconds)

    def slack_error(self, method: str, error: str) -> None:
        self.slack_api_errors.labels(method, error).inc()

    def slack_request_refused(self, status: int) -> None:
        self.slack_requests_refused.labels(str(status)).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


class SlackErrorCounter(RetryHandler):
    """Counts every failed Web API answer; never asks for a retry itself.

    slack_sdk shows each response to its retry handlers, so this sees 429s that a later
    handler retries as well as `ok: false` answers that raise SlackApiError.
    """

    def __init__(self, metrics: Metrics) -> None:
        super().__init__(max_retry_count=1_000_000)
        self.metrics = metrics

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        method = request.url.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0]
        if response is None:
            if error is not None:
                self.metrics.slack_error(method, type(error).__name__)
            return False
        body: Any = response.body
        if response.status_code == 429:
            self.metrics.slack_error(method, "ratelimited")
        elif response.status_code >= 400:
            self.metrics.slack_error(method, f"http_{response.status_code}")
        elif isinstance(body, dict) and body.get("ok") is False:
            self.metrics.slack_error(method, str(body.get("error") or "unknown"))
        return False


__all__ = ["CONTENT_TYPE", "Metrics", "SlackErrorCounter"]
