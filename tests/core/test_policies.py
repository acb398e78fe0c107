"""Approval policies: catalogue keys and their errors, pod overrides, evaluation, windows."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.catalogue import load_catalogue
from core.errors import ConfigError
from core.policies import (
    Facts,
    Policies,
    auto_approval,
    earliest_run,
    expires_at,
    expiry_reason,
    may_run_now,
    parse_window,
    second_approval,
)
from core.risk import RiskLevel

CATALOGUE = """
pods:
  - id: payments
    name: Payments
  - id: dba
    name: DBA
instances:
  - id: pg-shop
    name: Shop
    type: postgresql
    host: 127.0.0.1
    port: 5432
    databases: [shop]
    risk:
      write_high_rows: 500
    policies:
      auto_approve:
        name: small-reads
        kinds: [read]
        max_risk: low
        max_estimated_rows: 10000
      second_approval:
        - name: schema-changes
          kinds: [ddl]
          group: admins
        - name: big-writes
          kinds: [write]
          min_estimated_rows: 1000
          group: dba
      expire_after_h: 48
      window: Sat 22:00–Sun 04:00 Europe/Berlin
    pod_policies:
      payments:
        auto_approve: []
        expire_after_h: 24
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "dbquery.yml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_policies_load_and_a_pod_override_replaces_only_its_keys(tmp_path):
    shop = load_catalogue(write(tmp_path, CATALOGUE)).instance("pg-shop")

    assert shop.risk.write_high_rows == 500
    base = shop.policies_for("dba")
    assert [rule.name for rule in base.auto_approve] == ["small-reads"]
    assert [rule.group for rule in base.second_approval] == ["admins", "dba"]
    assert base.expire_after_h == 48
    assert str(base.window) == "Sat 22:00–Sun 04:00 Europe/Berlin"
    payments = shop.policies_for("payments")
    assert payments.auto_approve == []
    assert payments.expire_after_h == 24
    assert payments.second_approval == base.second_approval
    assert payments.window == base.window


def test_an_instance_without_policies_gets_the_defaults(tmp_path):
    text = CATALOGUE.split("    risk:")[0]
    policies = load_catalogue(write(tmp_path, text)).instance("pg-shop").policies_for("payments")

    assert (policies.auto_approve, policies.second_approval) == ([], [])
    assert (policies.expire_after_h, policies.window) == (72, None)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "window: Sat 22:00–Sun 04:00 Europe/Berlin",
            "window: Sat 22:00–Sun 04:00 Mars/Olympus",
            "instances[0].policies.window (id 'pg-shop'): 'Sat 22:00–Sun 04:00 Mars/Olympus':"
            " unknown time zone 'Mars/Olympus'",
        ),
        (
            "window: Sat 22:00–Sun 04:00 Europe/Berlin",
            "window: Caturday 22:00",
            "instances[0].policies.window (id 'pg-shop'): 'Caturday 22:00' is not a window",
        ),
        (
            "window: Sat 22:00–Sun 04:00 Europe/Berlin",
            "window: Sat 25:00–Sun 04:00 UTC",
            "25:00 is not a time of day",
        ),
        (
            "group: dba",
            "group: nobody",
            "instances[0] (id 'pg-shop').policies.second_approval: group 'nobody' must be"
            " 'admins' or a pod id",
        ),
        (
            "      payments:\n",
            "      ghosts:\n",
            "instances[0] (id 'pg-shop').pod_policies: 'ghosts' is not a pod of the catalogue",
        ),
        (
            "kinds: [read]",
            "kinds: [ddl]",
            "instances[0].policies.auto_approve[0].kinds[0] (id 'pg-shop'): Input should be"
            " 'read' or 'write'",
        ),
        (
            "max_risk: low",
            "max_risk: tiny",
            "instances[0].policies.auto_approve[0].max_risk (id 'pg-shop'): Input should be"
            " 'low', 'medium', 'high' or 'critical'",
        ),
        ("expire_after_h: 48", "expire_after_h: 0", "expire_after_h (id 'pg-shop')"),
        (
            "name: big-writes",
            "name: schema-changes",
            "policy name 'schema-changes' is used twice",
        ),
        ("          group: admins\n", "          grop: admins\n", "grop (id 'pg-shop')"),
    ],
)
def test_a_bad_policy_names_file_entry_and_field(tmp_path, old, new, message):
    assert old in CATALOGUE
    path = write(tmp_path, CATALOGUE.replace(old, new, 1))

    with pytest.raises(ConfigError) as caught:
        load_catalogue(path)

    assert str(caught.value).startswith(f"{path}: ")
    assert message in str(caught.value)


# --- evaluation ---------------------------------------------------------------------------

POLICIES = Policies.model_validate(
    {
        "auto_approve": [
            {"name": "small-reads", "kinds": ["read"], "max_estimated_rows": 10_000},
            {"name": "tiny-writes", "kinds": ["write"], "max_risk": "medium",
             "max_estimated_rows": 10},
        ],
        "second_approval": [
            {"name": "schema", "kinds": ["ddl", "admin"]},
            {"name": "big-writes", "kinds": ["write"], "min_estimated_rows": 1000,
             "group": "dba"},
            {"name": "risky-reads", "kinds": ["read"], "min_risk": "high"},
        ],
    }
)  # fmt: skip

L, M, H, C = RiskLevel.LOW, RiskLevel.MEDIUM, RiskLevel.HIGH, RiskLevel.CRITICAL


@pytest.mark.parametrize(
    ("kind", "risk", "rows", "auto", "second"),
    [
        ("read", L, 5, "small-reads", None),
        ("read", L, 10_000, "small-reads", None),
        ("read", L, 10_001, None, None),
        ("read", L, None, None, None),  # an unknown estimate is never small
        ("read", M, 5, None, None),
        ("read", H, 5, None, "risky-reads"),
        ("write", M, 10, "tiny-writes", None),
        ("write", M, 11, None, None),
        ("write", H, 5, None, None),
        ("write", M, 999, None, None),
        ("write", H, 1000, None, "big-writes"),
        ("write", H, None, None, "big-writes"),  # unknown reaches every threshold
        ("ddl", L, 0, None, "schema"),
        ("admin", C, None, None, "schema"),
    ],
)
def test_policy_evaluation(kind, risk, rows, auto, second):
    facts = Facts(kind=kind, risk=risk, estimated_rows=rows)

    matched_auto = auto_approval(POLICIES, facts)
    matched_second = second_approval(POLICIES, facts)

    assert (matched_auto.name if matched_auto else None) == auto
    assert (matched_second.name if matched_second else None) == second


def test_schema_changes_are_never_auto_approved_even_by_a_hand_built_rule():
    rules = Policies.model_construct(auto_approve=[POLICIES.auto_approve[0].model_copy(
        update={"kinds": ["ddl"], "max_estimated_rows": None})])  # fmt: skip

    assert auto_approval(rules, Facts("ddl", L, 0)) is None


def test_expiry():
    submitted = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    policies = Policies(expire_after_h=72)

    assert expires_at(policies, submitted) == submitted + timedelta(hours=72)
    assert expiry_reason(policies) == "expired: no decision in 72 h"


# --- windows ------------------------------------------------------------------------------

BERLIN_WEEKEND = parse_window("Sat 22:00–Sun 04:00 Europe/Berlin")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "is_open"),
    [
        (utc(2026, 1, 10, 20, 59), False),  # Sat 21:59 in Berlin (UTC+1)
        (utc(2026, 1, 10, 21, 0), True),  # Sat 22:00
        (utc(2026, 1, 11, 2, 59), True),  # Sun 03:59
        (utc(2026, 1, 11, 3, 0), False),  # Sun 04:00
        (utc(2026, 1, 14, 12, 0), False),  # Wednesday
        (utc(2026, 7, 11, 20, 0), True),  # Sat 22:00 in summer (UTC+2)
        (utc(2026, 7, 11, 19, 59), False),
    ],
)
def test_a_weekly_window_across_midnight_in_its_time_zone(now, is_open):
    assert BERLIN_WEEKEND.is_open(now) is is_open


def test_next_opening_is_the_coming_saturday_night():
    wednesday = utc(2026, 1, 14, 12, 0)
    assert BERLIN_WEEKEND.next_opening(wednesday) == utc(2026, 1, 17, 21, 0)
    inside = utc(2026, 1, 11, 1, 0)
    assert BERLIN_WEEKEND.next_opening(inside) == inside


def test_a_daily_window():
    nightly = parse_window("22:00-04:00 UTC")

    assert nightly.is_open(utc(2026, 3, 3, 23, 30)) and nightly.is_open(utc(2026, 3, 4, 3, 0))
    assert not nightly.is_open(utc(2026, 3, 4, 12, 0))
    assert nightly.next_opening(utc(2026, 3, 4, 12, 0)) == utc(2026, 3, 4, 22, 0)


def test_when_an_approved_request_may_run():
    policies = Policies(window=BERLIN_WEEKEND)
    wednesday = utc(2026, 1, 14, 12, 0)
    saturday_night = utc(2026, 1, 17, 21, 0)

    assert earliest_run(policies, "read", wednesday, None) == wednesday
    assert earliest_run(policies, "write", wednesday, None) == saturday_night
    assert earliest_run(policies, "ddl", wednesday, utc(2026, 1, 11, 1, 0)) == saturday_night
    later = utc(2026, 1, 17, 22, 30)
    assert earliest_run(policies, "write", wednesday, later) == later
    assert earliest_run(Policies(), "write", wednesday, later) == later
    assert earliest_run(Policies(), "write", later, wednesday) == later  # approved after its time

    assert not may_run_now(policies, "write", wednesday, None)
    assert may_run_now(policies, "read", wednesday, None)
    assert may_run_now(policies, "write", saturday_night, None)
    assert not may_run_now(Policies(), "read", wednesday, later)
    assert may_run_now(Policies(), "read", later, later)


WINDOWS = st.sampled_from(
    [
        "Sat 22:00–Sun 04:00 Europe/Berlin",
        "Sun 01:30-Sun 02:30 Europe/Berlin",  # inside the hour DST skips or repeats
        "Fri 23:00-Mon 06:00 America/New_York",
        "Mon 09:00-Mon 08:00 UTC",  # all week but one hour
        "22:00-04:00 Australia/Sydney",
        "02:00-03:00 Europe/London",
    ]
)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(
    text=WINDOWS,
    now=st.datetimes(
        min_value=datetime(2020, 1, 1), max_value=datetime(2035, 12, 31), timezones=st.just(UTC)
    ),
)
def test_a_window_opens_no_later_than_a_week_and_is_open_when_it_says(text, now):
    window = parse_window(text)

    opening = window.next_opening(now)

    assert now <= opening <= now + timedelta(days=8)
    assert window.is_open(opening)
    assert (opening == now) == window.is_open(now)
