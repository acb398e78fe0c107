"""The risk level of a request: low, medium, high or critical, by rules written down here.

The rules, applied in order; the highest level any rule gives wins, and the target's floor
is the lowest level a request on it can have:

| kind  | condition                                                     | level    |
| ----- | ------------------------------------------------------------- | -------- |
| any   | a warning that destroys data (DROP ..., TRUNCATE ...)         | critical |
| admin | always (acts on the server: other sessions, settings, files)  | critical |
| ddl   | always (a schema change)                                      | high     |
| write | estimated rows affected >= `write_critical_rows` (1,000,000)  | critical |
| write | estimated rows affected >= `write_high_rows` (10,000)         | high     |
| write | no estimate of the rows affected                              | high     |
| write | UPDATE/DELETE without WHERE, updateMany/deleteMany unfiltered | high     |
| write | otherwise                                                     | medium   |
| read  | estimated rows returned >= `read_medium_rows` (100,000)       | medium   |
| read  | a full scan of a table of >= `large_table_rows` (100,000)     | medium   |
| read  | no estimate (failed, timed out, or the server gave no plan)   | medium   |
| read  | any analysis warning (e.g. several statements in a query)     | medium   |
| read  | otherwise                                                     | low      |
| any   | the instance's `floor`                                        | at least |

An unknown figure never counts as small: a write whose size is unknown is high, a read whose
cost is unknown is medium. Every threshold is set per instance in the catalogue (`risk:`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from core.analysis import ADMIN, DDL, READ, WRITE
from core.estimates import OK, Estimate


class RiskLevel(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _ORDER.index(self)


_ORDER = (RiskLevel.LOW, RiskLevel.MEDIUM, RiskLevel.HIGH, RiskLevel.CRITICAL)

_DESTRUCTIVE_PREFIXES = ("DROP ", "TRUNCATE ")
_UNFILTERED_MARKERS = ("without WHERE", "without a filter")


class RiskThresholds(BaseModel):
    """The figures the rules compare against; an instance's `risk:` entry in the catalogue."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    large_table_rows: int = Field(default=100_000, gt=0)
    read_medium_rows: int = Field(default=100_000, gt=0)
    write_high_rows: int = Field(default=10_000, gt=0)
    write_critical_rows: int = Field(default=1_000_000, gt=0)
    floor: RiskLevel = RiskLevel.LOW


@dataclass(frozen=True)
class Risk:
    level: RiskLevel
    reasons: tuple[str, ...]  # why, in the approver's words, most serious first

    def label(self) -> str:
        return self.level.value


def assess(
    kind: str,
    estimate: Estimate | None,
    warnings: tuple[str, ...] = (),
    thresholds: RiskThresholds | None = None,
) -> Risk:
    """Apply the rules in the module docstring."""
    limits = thresholds or RiskThresholds()
    found: list[tuple[RiskLevel, str]] = []
    for warning in warnings:
        if warning.startswith(_DESTRUCTIVE_PREFIXES):
            found.append((RiskLevel.CRITICAL, f"destroys data: {warning}"))
    known = estimate is not None and estimate.status == OK
    if kind == ADMIN:
        found.append((RiskLevel.CRITICAL, "acts on the server itself"))
    elif kind == DDL:
        found.append((RiskLevel.HIGH, "changes the schema"))
    elif kind == WRITE:
        found.extend(_write_rules(estimate if known else None, warnings, limits))
    elif kind == READ:
        found.extend(_read_rules(estimate if known else None, warnings, limits))
    else:
        found.append((RiskLevel.CRITICAL, f"unknown kind {kind!r}"))
    if limits.floor is not RiskLevel.LOW:
        found.append((limits.floor, f"the target's floor is {limits.floor.value}"))
    if not found:
        return Risk(RiskLevel.LOW, ())
    found.sort(key=lambda item: -item[0].rank)
    return Risk(found[0][0], tuple(dict.fromkeys(reason for _, reason in found)))


def _write_rules(
    estimate: Estimate | None, warnings: tuple[str, ...], limits: RiskThresholds
) -> list[tuple[RiskLevel, str]]:
    found = [(RiskLevel.MEDIUM, "writes data")]
    rows = estimate.rows if estimate is not None else None
    if rows is None:
        found.append((RiskLevel.HIGH, "the rows affected are not known"))
    elif rows >= limits.write_critical_rows:
        found.append((RiskLevel.CRITICAL, f"~{rows:,} rows affected"))
    elif rows >= limits.write_high_rows:
        found.append((RiskLevel.HIGH, f"~{rows:,} rows affected"))
    for warning in warnings:
        if any(marker in warning for marker in _UNFILTERED_MARKERS):
            found.append((RiskLevel.HIGH, warning))
    return found


def _read_rules(
    estimate: Estimate | None, warnings: tuple[str, ...], limits: RiskThresholds
) -> list[tuple[RiskLevel, str]]:
    found: list[tuple[RiskLevel, str]] = []
    if estimate is None or estimate.rows is None:
        found.append((RiskLevel.MEDIUM, "the cost is not known"))
    elif estimate.rows >= limits.read_medium_rows:
        found.append((RiskLevel.MEDIUM, f"~{estimate.rows:,} rows returned"))
    if estimate is not None:
        for scan in estimate.statements:
            for table in scan.full_scans:
                if table.rows is not None and table.rows >= limits.large_table_rows:
                    found.append((RiskLevel.MEDIUM, f"full scan of {table.table}"))
    for warning in warnings:
        found.append((RiskLevel.MEDIUM, warning))
    return found
