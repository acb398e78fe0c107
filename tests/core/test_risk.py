"""The risk rules of core.risk, as a table: kind, estimate, warnings, thresholds -> level."""

from __future__ import annotations

import pytest

from core.estimates import FAILED, OK, Estimate, FullScan, StatementEstimate
from core.risk import RiskLevel, RiskThresholds, assess

LOW, MEDIUM, HIGH, CRITICAL = (
    RiskLevel.LOW,
    RiskLevel.MEDIUM,
    RiskLevel.HIGH,
    RiskLevel.CRITICAL,
)


def rows(count: int, *, affected: bool = False, scan: int | None = None) -> Estimate:
    scans = (FullScan("orders", scan),) if scan is not None else ()
    statement = StatementEstimate(index=1, rows=count, affects_rows=affected, full_scans=scans)
    return Estimate(status=OK, statements=(statement,))


NO_ESTIMATE = Estimate(status=FAILED, message="timed out after 2 s")
UNKNOWN_ROWS = Estimate(status=OK, statements=(StatementEstimate(index=1, note="no plan"),))
STRICT = RiskThresholds(write_high_rows=100, write_critical_rows=1_000, read_medium_rows=10)

TABLE = [
    # kind, estimate, warnings, thresholds, expected
    ("read", rows(10), (), None, LOW),
    ("read", rows(99_999), (), None, LOW),
    ("read", rows(100_000), (), None, MEDIUM),
    ("read", rows(5, scan=50_000), (), None, LOW),
    ("read", rows(5, scan=100_000), (), None, MEDIUM),
    ("read", NO_ESTIMATE, (), None, MEDIUM),
    ("read", UNKNOWN_ROWS, (), None, MEDIUM),
    ("read", None, (), None, MEDIUM),
    ("read", rows(1), ("more than one statement in a query",), None, MEDIUM),
    ("read", rows(11), (), STRICT, MEDIUM),
    ("read", rows(1), (), RiskThresholds(floor=RiskLevel.HIGH), HIGH),
    ("write", rows(1, affected=True), (), None, MEDIUM),
    ("write", rows(9_999, affected=True), (), None, MEDIUM),
    ("write", rows(10_000, affected=True), (), None, HIGH),
    ("write", rows(999_999, affected=True), (), None, HIGH),
    ("write", rows(1_000_000, affected=True), (), None, CRITICAL),
    ("write", rows(100, affected=True), (), STRICT, HIGH),
    ("write", rows(1_000, affected=True), (), STRICT, CRITICAL),
    ("write", NO_ESTIMATE, (), None, HIGH),
    ("write", UNKNOWN_ROWS, (), None, HIGH),
    ("write", rows(3, affected=True), ("UPDATE without WHERE on orders",), None, HIGH),
    ("write", rows(3, affected=True), ("deleteMany without a filter on orders",), None, HIGH),
    ("write", rows(3, affected=True), ("TRUNCATE orders",), None, CRITICAL),
    ("ddl", None, (), None, HIGH),
    ("ddl", rows(0), ("DROP COLUMN note on orders",), None, CRITICAL),
    ("ddl", None, ("DROP TABLE orders",), None, CRITICAL),
    ("admin", rows(1), (), None, CRITICAL),
    ("ddl", None, (), RiskThresholds(floor=RiskLevel.CRITICAL), CRITICAL),
]


@pytest.mark.parametrize(("kind", "estimate", "warnings", "thresholds", "expected"), TABLE)
def test_risk_rules(kind, estimate, warnings, thresholds, expected):
    assert assess(kind, estimate, warnings, thresholds).level is expected


def test_reasons_come_most_serious_first():
    risk = assess("write", rows(20_000, affected=True), ("DROP TABLE orders",))

    assert risk.level is CRITICAL
    assert risk.reasons[0] == "destroys data: DROP TABLE orders"
    assert "~20,000 rows affected" in risk.reasons
