"""The worker's hourly clean-up also forgets expired sign-in links and stale throttling rows."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from core.auth import forget_expired_sign_ins
from db.models import LoginThrottle, SignInLink, utcnow
from tests.portal import add_people, fresh_portal_url, portal_services


def test_expired_links_and_stale_throttles_are_deleted(make_pg_database, tmp_path):
    requests, users = portal_services(fresh_portal_url("sqlite", make_pg_database, tmp_path))
    person = add_people(users).developer
    now = utcnow()
    with users.sessions.begin() as session:
        for name, expires in (
            ("old", now - timedelta(minutes=1)),
            ("live", now + timedelta(minutes=9)),
        ):
            session.add(
                SignInLink(
                    user_id=person.id, token_hash=name * 16, purpose="sign_in", expires_at=expires
                )
            )
        session.add(
            LoginThrottle(key="ip:stale", failures=3, last_failure_at=now - timedelta(hours=2))
        )
        session.add(LoginThrottle(key="ip:recent", failures=3, last_failure_at=now))
    assert forget_expired_sign_ins(users.sessions, now) == 2
    with users.sessions() as session:
        assert session.scalars(select(SignInLink.token_hash)).all() == ["live" * 16]
        assert session.scalars(select(LoginThrottle.key)).all() == ["ip:recent"]
    requests.sessions.engine.dispose()
