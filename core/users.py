"""Portal users: administration and resolving a Slack user to a portal user."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.catalogue import Catalogue
from core.errors import InvalidSubmission, NotFound, NotRegistered
from core.lifecycle import Role
from core.records import UserRecord
from db import repository as repo
from db.models import User, utcnow
from db.session import Sessions

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
SLACK_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
NOT_REGISTERED = (
    "You are not registered in dbquery. Ask a dbquery admin to add you "
    "(`dbquery users add --email <your Slack email> ...`)."
)
DEACTIVATED = "Your dbquery account is deactivated. Ask a dbquery admin to reactivate it."


class UserService:
    def __init__(self, sessions: Sessions, catalogue: Catalogue) -> None:
        self.sessions = sessions
        self.catalogue = catalogue

    def add(
        self, *, email: str, name: str, role: str, pod: str | None, slack_id: str | None = None
    ) -> UserRecord:
        email = email.strip()
        if not EMAIL.match(email):
            raise InvalidSubmission("email", f"{email!r} is not an email address")
        if not name.strip():
            raise InvalidSubmission("name", "a name is required")
        if role not in set(Role):
            raise InvalidSubmission("role", f"role must be one of {', '.join(Role)}")
        if role != Role.ADMIN and not pod:
            raise InvalidSubmission("pod", "developers and managers need a pod")
        if pod and self.catalogue.pod(pod) is None:
            known = ", ".join(p.id for p in self.catalogue.pods) or "none"
            raise InvalidSubmission("pod", f"unknown pod {pod!r} (catalogue pods: {known})")
        self._check_slack_id(slack_id)
        with self._unique_write(email=email, slack_id=slack_id) as session:
            if repo.user_by_email(session, email) is not None:
                raise InvalidSubmission("email", f"a user with email {email} already exists")
            user = User(
                email=email,
                name=name.strip(),
                role=role,
                pod_id=pod or None,
                slack_user_id=slack_id or None,
            )
            session.add(user)
            session.flush()
            return UserRecord.of(user)

    def admins(self) -> list[UserRecord]:
        with self.sessions() as session:
            return [UserRecord.of(u) for u in repo.active_admins(session)]

    def expire_tokens(self, now: datetime | None = None) -> int:
        """Delete the sign-in token rows that have expired; returns how many."""
        with self.sessions.begin() as session:
            return repo.delete_expired_tokens(session, now or utcnow())

    def list(self) -> list[UserRecord]:
        with self.sessions() as session:
            return [UserRecord.of(u) for u in repo.all_users(session)]

    def deactivate(self, email: str) -> UserRecord:
        with self.sessions.begin() as session:
            user = self._by_email(session, email)
            user.is_active = False
            return UserRecord.of(user)

    def link_slack(self, email: str, slack_id: str) -> UserRecord:
        self._check_slack_id(slack_id)
        with self._unique_write(slack_id=slack_id) as session:
            user = self._by_email(session, email)
            user.slack_user_id = slack_id
            session.flush()
            return UserRecord.of(user)

    def by_slack_id(self, slack_user_id: str) -> UserRecord | None:
        with self.sessions() as session:
            user = repo.user_by_slack_id(session, slack_user_id)
            return UserRecord.of(user) if user else None

    def resolve_slack_user(
        self, slack_user_id: str, email_of: Callable[[str], str | None]
    ) -> UserRecord:
        """The active portal user behind a Slack user: by stored link, else by profile email.

        `email_of` asks Slack (users.info) and is called only when no link is stored yet.
        """
        user = self.by_slack_id(slack_user_id)
        if user is None:
            user = self.link_by_email(slack_user_id, email_of(slack_user_id))
        return self.active(user)

    def link_by_email(self, slack_user_id: str, email: str | None) -> UserRecord | None:
        """The user with this email, now linked to the Slack user; None when nobody fits (no
        such email, or it is linked to another Slack user already)."""
        if not email:
            return None
        with self.sessions.begin() as session:
            row = repo.user_by_email(session, email)
            if row is None or row.slack_user_id not in (None, slack_user_id):
                return None
            row.slack_user_id = slack_user_id
            session.flush()
            return UserRecord.of(row)

    @staticmethod
    def active(user: UserRecord | None) -> UserRecord:
        """`user` when they may use dbquery; NotRegistered saying why not otherwise."""
        if user is None:
            raise NotRegistered(NOT_REGISTERED)
        if not user.is_active:
            raise NotRegistered(DEACTIVATED)
        return user

    @contextmanager
    def _unique_write(
        self, *, email: str | None = None, slack_id: str | None = None
    ) -> Iterator[Session]:
        """A write transaction whose unique-key violation (a concurrent twin) is a user error."""
        try:
            with self.sessions.begin() as session:
                yield session
        except IntegrityError:
            taken = [f"Slack user {slack_id}"] if slack_id else []
            taken += [f"email {email}"] if email else []
            raise InvalidSubmission(
                "slack_id" if slack_id else "email",
                f"{' or '.join(taken)} already belongs to another user",
            ) from None

    def _by_email(self, session: Session, email: str) -> User:
        user = repo.user_by_email(session, email.strip())
        if user is None:
            raise NotFound(f"no user with email {email}")
        return user

    @staticmethod
    def _check_slack_id(slack_id: str | None) -> None:
        if slack_id and not SLACK_ID.match(slack_id):
            raise InvalidSubmission(
                "slack_id", f"{slack_id!r} is not a Slack user id (like U0123ABCD)"
            )
