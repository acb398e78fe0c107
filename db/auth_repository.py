"""The queries web sign-in needs on the seed's token tables and the sign-in extras.

Callers own the transaction. Tokens are only ever stored as SHA-256 hashes.
"""

from __future__ import annotations

import uuid as uuid_mod
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, exists, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from db.models import (
    AccessTokenBlacklist,
    LoginThrottle,
    RefreshToken,
    SignInLink,
    User,
    UserTokenInvalidation,
)


def _insert(session: Session, model: Any):
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(model)


# --- refresh tokens --------------------------------------------------------------------------


def add_refresh_token(
    session: Session, user_id: uuid_mod.UUID, token_hash: str, expires_at: datetime, now: datetime
) -> RefreshToken:
    row = RefreshToken(
        user_id=user_id, token_hash=token_hash, expires_at=expires_at, created_at=now
    )
    session.add(row)
    session.flush()
    return row


def refresh_token_for_update(session: Session, token_hash: str) -> RefreshToken | None:
    # The row lock serialises two uses of one token: the second sees it revoked.
    return session.scalar(
        select(RefreshToken).where(RefreshToken.token_hash == token_hash).with_for_update()
    )


def revoke_refresh_token(
    session: Session, user_id: uuid_mod.UUID, token_id: uuid_mod.UUID, now: datetime
) -> bool:
    result = session.execute(
        update(RefreshToken)
        .where(
            RefreshToken.id == token_id,
            RefreshToken.user_id == user_id,
            RefreshToken.revoked_at.is_(None),
        )
        .values(revoked_at=now)
    )
    return result.rowcount == 1


def revoke_all_refresh_tokens(session: Session, user_id: uuid_mod.UUID, now: datetime) -> int:
    result = session.execute(
        update(RefreshToken)
        .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return result.rowcount


def live_refresh_tokens(
    session: Session, user_id: uuid_mod.UUID, now: datetime
) -> Sequence[RefreshToken]:
    return session.scalars(
        select(RefreshToken)
        .where(
            RefreshToken.user_id == user_id,
            RefreshToken.revoked_at.is_(None),
            RefreshToken.expires_at > now,
        )
        .order_by(RefreshToken.created_at.desc())
    ).all()


# --- access tokens ---------------------------------------------------------------------------


def blacklist_access_token(
    session: Session, token_hash: str, user_id: uuid_mod.UUID, expires_at: datetime
) -> None:
    session.execute(
        _insert(session, AccessTokenBlacklist)
        .values(token_hash=token_hash, user_id=user_id, expires_at=expires_at)
        .on_conflict_do_nothing(index_elements=["token_hash"])
    )


def invalidate_user_tokens(session: Session, user_id: uuid_mod.UUID, now: datetime) -> None:
    """Access tokens of this user issued before `now` are refused from now on."""
    statement = _insert(session, UserTokenInvalidation).values(user_id=user_id, invalidated_at=now)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["user_id"], set_={"invalidated_at": statement.excluded.invalidated_at}
        )
    )


def token_state(
    session: Session | Connection, user_id: uuid_mod.UUID, token_hash: str
) -> tuple[Any, datetime | None, bool] | None:
    """(user, invalidated_at, blacklisted) in one round trip; None when the user is gone.

    `user` is a row with the users table's columns as attributes.
    """
    blacklisted = exists().where(AccessTokenBlacklist.token_hash == token_hash)
    # Columns, not an ORM entity: this runs on every request and only reads.
    row = session.execute(
        select(
            *User.__table__.columns,
            UserTokenInvalidation.invalidated_at,
            blacklisted.label("blacklisted"),
        )
        .outerjoin(UserTokenInvalidation, UserTokenInvalidation.user_id == User.id)
        .where(User.id == user_id)
    ).first()
    return None if row is None else (row, row.invalidated_at, row.blacklisted)


# --- one-time links --------------------------------------------------------------------------


def add_sign_in_link(
    session: Session,
    user_id: uuid_mod.UUID,
    token_hash: str,
    purpose: str,
    expires_at: datetime,
    now: datetime,
) -> None:
    session.add(
        SignInLink(
            user_id=user_id,
            token_hash=token_hash,
            purpose=purpose,
            expires_at=expires_at,
            created_at=now,
        )
    )


def use_sign_in_link(
    session: Session, token_hash: str, purpose: str, now: datetime
) -> uuid_mod.UUID | None:
    """Mark the link used, once: the user it was for, or None (unknown, used or expired)."""
    result = session.execute(
        update(SignInLink)
        .where(
            SignInLink.token_hash == token_hash,
            SignInLink.purpose == purpose,
            SignInLink.used_at.is_(None),
            SignInLink.expires_at > now,
        )
        .values(used_at=now)
    )
    if result.rowcount != 1:
        return None
    return session.scalar(select(SignInLink.user_id).where(SignInLink.token_hash == token_hash))


def link_by_hash(session: Session, token_hash: str, purpose: str) -> SignInLink | None:
    return session.scalar(
        select(SignInLink).where(SignInLink.token_hash == token_hash, SignInLink.purpose == purpose)
    )


def links_sent_since(session: Session, user_id: uuid_mod.UUID, since: datetime) -> int:
    return session.scalar(
        select(func.count())
        .select_from(SignInLink)
        .where(SignInLink.user_id == user_id, SignInLink.created_at >= since)
    )


def delete_expired_links(session: Session, now: datetime) -> int:
    return session.execute(delete(SignInLink).where(SignInLink.expires_at < now)).rowcount


# --- sign-in throttling ----------------------------------------------------------------------


def throttles(session: Session, keys: Sequence[str]) -> Sequence[LoginThrottle]:
    return session.scalars(select(LoginThrottle).where(LoginThrottle.key.in_(keys))).all()


def throttle_for_update(session: Session, key: str, now: datetime) -> LoginThrottle:
    session.execute(
        _insert(session, LoginThrottle)
        .values(key=key, failures=0, last_failure_at=now)
        .on_conflict_do_nothing(index_elements=["key"])
    )
    return session.scalars(
        select(LoginThrottle).where(LoginThrottle.key == key).with_for_update()
    ).one()


def clear_throttle(session: Session, key: str) -> None:
    session.execute(delete(LoginThrottle).where(LoginThrottle.key == key))


def replace_password_hash(session: Session, user_id: uuid_mod.UUID, old: str, new: str) -> None:
    """Store a new hash of the same password, unless the password changed in the meantime."""
    session.execute(
        update(User).where(User.id == user_id, User.password_hash == old).values(password_hash=new)
    )


def delete_stale_throttles(session: Session, failed_before: datetime) -> int:
    return session.execute(
        delete(LoginThrottle).where(LoginThrottle.last_failure_at < failed_before)
    ).rowcount
