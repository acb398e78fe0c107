"""Approval policies of an instance (with per-pod overrides), and their pure evaluation.

- `auto_approve`: rules under which a request needs no person. A rule matches when the kind
  is one of its `kinds` (reads by default; schema changes and admin statements never), the
  risk is at most `max_risk` (low by default) and, when `max_estimated_rows` is set, the
  estimate is known and at most that.
- `second_approval`: rules under which a second person must approve too. A rule matches when
  the kind is one of its `kinds` and, when set, the estimate reaches `min_estimated_rows`
  (an unknown estimate reaches every threshold) and the risk reaches `min_risk`. The second
  approver comes from `group`: `admins`, or the managers of a pod.
- `expire_after_h` (72 by default): a request still pending that long is rejected.
- `window`: writes and schema changes run only inside it, e.g. `Sat 22:00–Sun 04:00
  Europe/Berlin` (weekly) or `22:00–04:00 UTC` (daily); reads are never held.

A pod override replaces the keys it sets and keeps the instance's others.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, field_validator

from core.analysis import ADMIN, DDL, READ, WRITE
from core.risk import RiskLevel

DEFAULT_EXPIRE_AFTER_H = 72
ADMINS_GROUP = "admins"
POLICY_NAME_PATTERN = r"^[A-Za-z0-9_.:-]+$"

# Kinds that wait for the window; reads change nothing and are never held.
HELD_BY_WINDOW = (WRITE, DDL, ADMIN)


def _one_or_many(value: Any) -> Any:
    """`auto_approve: {...}` and `auto_approve: [{...}, ...]` are both accepted."""
    return [value] if isinstance(value, dict) else value


class AutoApproveRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=100, pattern=POLICY_NAME_PATTERN)
    kinds: list[Literal["read", "write"]] = Field(default_factory=lambda: [READ], min_length=1)
    max_risk: RiskLevel = RiskLevel.LOW
    max_estimated_rows: int | None = Field(default=None, ge=0)


class SecondApprovalRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=100, pattern=POLICY_NAME_PATTERN)
    kinds: list[Literal["read", "write", "ddl", "admin"]] = Field(min_length=1)
    min_estimated_rows: int | None = Field(default=None, ge=0)
    min_risk: RiskLevel | None = None
    group: str = Field(default=ADMINS_GROUP, min_length=1, max_length=100)


_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WINDOW = re.compile(
    r"^\s*(?:(?P<d1>[A-Za-z]{3})[a-z]*\s+)?(?P<t1>\d{1,2}:\d{2})\s*[-–—]\s*"
    r"(?:(?P<d2>[A-Za-z]{3})[a-z]*\s+)?(?P<t2>\d{1,2}:\d{2})\s+(?P<tz>\S+)\s*$"
)
_WEEK = timedelta(days=7)


@dataclass(frozen=True)
class Window:
    """A recurring time window in a time zone: weekly (`Sat 22:00–Sun 04:00`) or daily."""

    text: str
    zone: str
    start: time
    end: time
    start_day: int | None  # 0 = Monday; None for a daily window
    end_day: int | None

    def _spans(self, around: datetime) -> list[tuple[datetime, datetime]]:
        """The window's occurrences that may contain or follow `around` (local wall times)."""
        zone = ZoneInfo(self.zone)
        local = around.astimezone(zone)
        spans: list[tuple[datetime, datetime]] = []
        for offset in range(-8, 9):
            day = (local + timedelta(days=offset)).date()
            if self.start_day is not None and day.weekday() != self.start_day:
                continue
            opens = datetime.combine(day, self.start, tzinfo=zone)
            if self.start_day is None:
                days = 0 if self.end > self.start else 1
            else:
                days = (self.end_day - self.start_day) % 7  # type: ignore[operator]
                if days == 0 and self.end <= self.start:
                    days = 7
            closes = datetime.combine(day + timedelta(days=days), self.end, tzinfo=zone)
            spans.append((opens.astimezone(UTC), closes.astimezone(UTC)))
        return spans

    def is_open(self, now: datetime) -> bool:
        return any(opens <= now < closes for opens, closes in self._spans(now))

    def next_opening(self, now: datetime) -> datetime:
        """`now` when the window is open, else when it next opens (UTC)."""
        if self.is_open(now):
            return now
        return min(opens for opens, _ in self._spans(now) if opens > now)

    def __str__(self) -> str:
        return self.text


def parse_window(value: Any) -> Window:
    if isinstance(value, Window):
        return value
    if not isinstance(value, str):
        raise ValueError("must be text such as 'Sat 22:00–Sun 04:00 Europe/Berlin'")
    match = _WINDOW.match(value)
    if match is None:
        raise ValueError(
            f"{value!r} is not a window; write 'Sat 22:00–Sun 04:00 Europe/Berlin' (weekly)"
            " or '22:00–04:00 UTC' (daily)"
        )
    d1, d2 = match["d1"], match["d2"]
    if (d1 is None) != (d2 is None):
        raise ValueError(f"{value!r}: give a day at both ends of the window, or at neither")
    days = []
    for day in (d1, d2):
        if day is not None and day.lower() not in _DAYS:
            raise ValueError(f"{value!r}: {day!r} is not a day (Mon, Tue, ... Sun)")
        days.append(None if day is None else _DAYS.index(day.lower()))
    times = []
    for text in (match["t1"], match["t2"]):
        hours, minutes = (int(part) for part in text.split(":"))
        if hours > 23 or minutes > 59:
            raise ValueError(f"{value!r}: {text} is not a time of day")
        times.append(time(hours, minutes))
    try:
        ZoneInfo(match["tz"])
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{value!r}: unknown time zone {match['tz']!r}") from None
    if days == [None, None] and times[0] == times[1]:
        raise ValueError(f"{value!r}: the window opens and closes at the same time")
    return Window(
        text=" ".join(value.split()),
        zone=match["tz"],
        start=times[0],
        end=times[1],
        start_day=days[0],
        end_day=days[1],
    )


WindowField = Annotated[Window, BeforeValidator(parse_window), PlainSerializer(str)]


class Policies(BaseModel):
    """An instance's policies, or a pod's override of some of them (unset keys inherit)."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    auto_approve: Annotated[list[AutoApproveRule], BeforeValidator(_one_or_many)] = Field(
        default_factory=list
    )
    second_approval: Annotated[list[SecondApprovalRule], BeforeValidator(_one_or_many)] = Field(
        default_factory=list
    )
    expire_after_h: int = Field(default=DEFAULT_EXPIRE_AFTER_H, gt=0, le=24 * 366)
    window: WindowField | None = None

    @field_validator("auto_approve", "second_approval")
    @classmethod
    def _unique_names(cls, rules: list[Any]) -> list[Any]:
        names = [rule.name for rule in rules]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"policy name {name!r} is used twice")
        return rules

    def overridden_by(self, override: Policies | None) -> Policies:
        """These policies with the keys the override sets replaced."""
        if override is None:
            return self
        changes = {key: getattr(override, key) for key in override.model_fields_set}
        return self.model_copy(update=changes)

    def groups(self) -> set[str]:
        return {rule.group for rule in self.second_approval}


@dataclass(frozen=True)
class Facts:
    """What the policies look at: the request's kind, its risk and its estimated rows."""

    kind: str
    risk: RiskLevel
    estimated_rows: int | None  # None: not known


def auto_approval(policies: Policies, facts: Facts) -> AutoApproveRule | None:
    """The first auto_approve rule the request meets, or None when a person must decide."""
    if facts.kind not in (READ, WRITE):
        return None
    for rule in policies.auto_approve:
        if facts.kind not in rule.kinds or facts.risk.rank > rule.max_risk.rank:
            continue
        if rule.max_estimated_rows is not None and (
            facts.estimated_rows is None or facts.estimated_rows > rule.max_estimated_rows
        ):
            continue
        return rule
    return None


def second_approval(policies: Policies, facts: Facts) -> SecondApprovalRule | None:
    """The first second_approval rule the request meets, or None when one approval is enough."""
    for rule in policies.second_approval:
        if facts.kind not in rule.kinds:
            continue
        if rule.min_estimated_rows is not None and (
            facts.estimated_rows is not None and facts.estimated_rows < rule.min_estimated_rows
        ):
            continue
        if rule.min_risk is not None and facts.risk.rank < rule.min_risk.rank:
            continue
        return rule
    return None


def expires_at(policies: Policies, submitted_at: datetime) -> datetime:
    return submitted_at + timedelta(hours=policies.expire_after_h)


def expiry_reason(policies: Policies) -> str:
    return f"expired: no decision in {policies.expire_after_h} h"


def earliest_run(
    policies: Policies, kind: str, approved_at: datetime, run_after: datetime | None
) -> datetime:
    """When an approved request may start: its "run after" time, then the window's opening."""
    start = max(approved_at, run_after) if run_after is not None else approved_at
    if policies.window is None or kind not in HELD_BY_WINDOW:
        return start
    return policies.window.next_opening(start)


def may_run_now(policies: Policies, kind: str, now: datetime, run_after: datetime | None) -> bool:
    """The worker's check at claim time: past "run after" and, for a held kind, in the window."""
    if run_after is not None and now < run_after:
        return False
    return policies.window is None or kind not in HELD_BY_WINDOW or policies.window.is_open(now)
