"""Remembering who is asking: briefly, and never past the time limit."""

from __future__ import annotations

import uuid

from bot.middleware import RecentUsers
from core.records import UserRecord


def person(slack_id: str) -> UserRecord:
    return UserRecord(
        id=uuid.uuid4(),
        email=f"{slack_id.lower()}@example.com",
        name=slack_id,
        role="developer",
        pod_id="payments",
        slack_user_id=slack_id,
        is_active=True,
    )


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_person_is_remembered_until_the_time_limit_only():
    clock = FakeClock()
    recent = RecentUsers(ttl_s=30, clock=clock)
    ann = person("U0ANN")
    assert recent.get("U0ANN") is None
    recent.remember("U0ANN", ann)
    clock.now += 29.9
    assert recent.get("U0ANN") == ann
    clock.now += 0.1
    assert recent.get("U0ANN") is None


def test_the_memory_is_bounded_and_drops_expired_entries_first():
    clock = FakeClock()
    recent = RecentUsers(ttl_s=30, clock=clock, max_entries=2)
    recent.remember("U1", person("U1"))
    recent.remember("U2", person("U2"))
    recent.remember("U3", person("U3"))  # full: not remembered, nothing expired yet
    assert recent.get("U3") is None and recent.get("U1") is not None
    clock.now += 31
    recent.remember("U3", person("U3"))  # the expired ones make room
    assert recent.get("U3") is not None
    assert recent.get("U1") is None and recent.get("U2") is None
