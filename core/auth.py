"""Web sign-in on the seed's token tables, following the OAuth 2.0 Security BCP and OWASP.

- Access tokens: JWT HS256, 15 minutes, claims sub/role/iat/exp/jti. Every use is checked
  against the signature, expiry, the blacklist (logout), the user's invalidation time
  ("sign out everywhere", password change, deactivation, role or pod change) and whether the
  user is active. A positive check is cached for at most VERIFY_CACHE_S, so a logout or an
  invalidation on another replica takes effect within that time (at once on this one).
- Refresh tokens: opaque, 256-bit, stored as SHA-256, 7 days, rotated on every use. Using a
  revoked one is taken as theft: all the user's refresh tokens are revoked and their access
  tokens invalidated.
- Sign in by a one-time link the person hears of privately (a PrivateNotice), or by
  password (argon2id). Failures are throttled per email and per client address in the portal
  database, so the limit holds across replicas.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import threading
import time
import uuid as uuid_mod
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.engine import make_url

from core.errors import ConfigError, DbqueryError, InvalidSubmission
from core.events import EventBus, PrivateNotice
from core.records import UserRecord
from core.settings import Settings
from db import auth_repository as auth_repo
from db import repository as repo
from db.models import utcnow
from db.session import Sessions

ALGORITHM = "HS256"
ACCESS_TTL = timedelta(minutes=15)
REFRESH_TTL = timedelta(days=7)
SIGN_IN_LINK_TTL = timedelta(minutes=10)
SET_PASSWORD_LINK_TTL = timedelta(hours=24)
LINKS_PER_WINDOW = 5  # sign-in links one person may be sent per SIGN_IN_LINK_TTL
VERIFY_CACHE_S = 1.0
VERIFY_CACHE_MAX = 10_000
SECRET_MIN_BYTES = 32

PASSWORD_MIN_CHARS = 12
PASSWORD_MAX_CHARS = 1_024  # hashing is deliberately slow; an unbounded input is a lever
# Common passwords that pass the length rule, compared case-insensitively.
COMMON_PASSWORDS = frozenset(
    {
        "123456789012",
        "1234567890123",
        "12345678901234",
        "password1234",
        "password12345",
        "password123456",
        "passwordpassword",
        "qwertyuiopas",
        "qwerty123456",
        "qwertyqwerty",
        "1q2w3e4r5t6y",
        "iloveyou1234",
        "letmein12345",
        "welcome12345",
        "changeme1234",
        "administrator",
        "adminadmin123",
        "aaaaaaaaaaaa",
        "abcdefghijkl",
        "abc123abc123",
        "correcthorsebatterystaple",
        "trustno1trustno1",
        "football1234",
        "baseball1234",
        "sunshine1234",
        "princess1234",
        "superman1234",
        "monkey123456",
        "dragon123456",
        "p@ssw0rd1234",
    }
)

WRONG_CREDENTIALS = "email or password is wrong"
LINK_SENT = (
    "If that email belongs to an active dbquery user with a linked Slack account, a sign-in "
    "link is on its way to them in Slack. It works once, for 10 minutes."
)
LINK_INVALID = (
    "this link is not valid any more (it works once, for a limited time); ask for a new one"
)

# Throttling: failures beyond the free ones lock the key for a delay that doubles each time.
FREE_FAILURES = {"email": 5, "ip": 20}
FAILURE_WINDOW = timedelta(minutes=15)
MAX_LOCK = timedelta(minutes=15)


class AuthFailed(DbqueryError):
    """The token or credentials do not authenticate anyone; the message says what to do."""


class Throttled(DbqueryError):
    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class Tokens:
    access: str
    access_expires_at: datetime
    refresh: str
    refresh_expires_at: datetime
    user: UserRecord


@dataclass(frozen=True)
class Principal:
    """Who a verified access token speaks for."""

    user: UserRecord
    token_hash: str
    expires_at: datetime


@dataclass(frozen=True)
class SessionInfo:
    id: uuid_mod.UUID
    created_at: datetime
    expires_at: datetime
    current: bool


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def resolve_jwt_secret(settings: Settings) -> bytes:
    """DBQUERY_JWT_SECRET; for an SQLite portal, a secret generated once into a 0600 file."""
    if settings.jwt_secret is not None:
        secret = settings.jwt_secret.get_secret_value().encode("utf-8")
        if len(secret) < SECRET_MIN_BYTES:
            raise ConfigError(
                f"DBQUERY_JWT_SECRET must be at least {SECRET_MIN_BYTES} bytes "
                "(e.g. the output of `openssl rand -hex 32`)"
            )
        return secret
    url = make_url(settings.database_url)
    if url.get_backend_name() != "sqlite":
        raise ConfigError(
            "set DBQUERY_JWT_SECRET (at least 32 bytes, e.g. `openssl rand -hex 32`): every "
            "replica sharing a PostgreSQL portal must sign web sessions with the same secret "
            "(or set DBQUERY_WEB=off to serve Slack alone)"
        )
    if not url.database or url.database == ":memory:":
        return secrets.token_bytes(SECRET_MIN_BYTES)
    return _secret_file(Path(url.database).with_name(Path(url.database).name + ".jwt-secret"))


def _secret_file(path: Path) -> bytes:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        secret = path.read_bytes().strip()
        if len(secret) < SECRET_MIN_BYTES:
            raise ConfigError(
                f"{path} holds no usable secret; delete it to have a new one made"
            ) from None
        return secret
    secret = secrets.token_hex(SECRET_MIN_BYTES).encode("ascii")
    with os.fdopen(fd, "wb") as out:
        out.write(secret)
    return secret


def check_password_rules(password: str, email: str) -> None:
    if len(password) < PASSWORD_MIN_CHARS:
        raise InvalidSubmission(
            "password", f"the password must be at least {PASSWORD_MIN_CHARS} characters"
        )
    if len(password) > PASSWORD_MAX_CHARS:
        raise InvalidSubmission(
            "password", f"the password must be at most {PASSWORD_MAX_CHARS:,} characters"
        )
    lowered = password.strip().lower()
    if lowered in (email.lower(), email.lower().partition("@")[0]):
        raise InvalidSubmission("password", "the password must not be your email address")
    if lowered in COMMON_PASSWORDS:
        raise InvalidSubmission(
            "password", "that password is on the list of common passwords; choose another"
        )


def forget_expired_sign_ins(sessions: Sessions, now: datetime | None = None) -> int:
    """Delete sign-in links past their time and throttling rows nobody failed for a while."""
    now = now or utcnow()
    with sessions.begin() as session:
        removed = auth_repo.delete_expired_links(session, now)
        return removed + auth_repo.delete_stale_throttles(session, now - FAILURE_WINDOW - MAX_LOCK)


def password_hasher() -> PasswordHasher:
    """argon2id at OWASP's recommended parameters (19 MiB, 2 passes, 1 lane).

    The library's default (RFC 9106's low-memory profile: 64 MiB over 4 threads) would make each
    sign-in the largest allocation `serve` ever makes. Hashes made with other parameters still
    verify, and are made again with these at the next successful sign-in.
    """
    return PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


def set_password(
    sessions: Sessions,
    email: str,
    password: str,
    hasher: PasswordHasher | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> UserRecord:
    """Hash and store a user's password (argon2id) and end their web sessions.

    Needs no signing secret, so `dbquery users set-password` works before the web is set up.
    """
    with sessions() as session:
        user = repo.user_by_email(session, (email or "").strip())
        if user is None:
            raise InvalidSubmission("email", f"no user with email {email}")
        email = user.email
    check_password_rules(password, email)
    hashed = (hasher or password_hasher()).hash(password)
    with sessions.begin() as session:
        user = repo.user_by_email(session, email)
        user.password_hash = hashed
        now = clock()
        auth_repo.revoke_all_refresh_tokens(session, user.id, now)
        auth_repo.invalidate_user_tokens(session, user.id, now)
        return UserRecord.of(user)


class AuthService:
    def __init__(
        self,
        sessions: Sessions,
        secret: bytes,
        events: EventBus,
        public_url: str,
        clock: Callable[[], datetime] = utcnow,
        verify_cache_s: float = VERIFY_CACHE_S,
    ) -> None:
        self.sessions = sessions
        self.verify_cache_s = verify_cache_s
        self.secret = secret
        self.events = events
        self.public_url = public_url.rstrip("/")
        self.clock = clock
        self.hasher = password_hasher()
        self._verified: dict[str, tuple[float, Principal]] = {}
        self._cache_lock = threading.Lock()

    # --- access tokens -------------------------------------------------------------------

    def issue(self, user: UserRecord) -> Tokens:
        now = self.clock()
        access_expires = now + ACCESS_TTL
        claims = {
            "sub": str(user.id),
            "role": user.role,
            # Sub-second, so a token issued just after an invalidation is not taken for older.
            "iat": round(now.timestamp(), 6),
            "exp": int(access_expires.timestamp()),
            "jti": uuid_mod.uuid4().hex,
        }
        access = jwt.encode(claims, self.secret, algorithm=ALGORITHM)
        refresh = secrets.token_urlsafe(32)
        refresh_expires = now + REFRESH_TTL
        with self.sessions.begin() as session:
            auth_repo.add_refresh_token(session, user.id, token_hash(refresh), refresh_expires, now)
        return Tokens(access, access_expires, refresh, refresh_expires, user)

    def recently_verified(self, access_token: str) -> Principal | None:
        """The principal of this very token if it passed every check within the cache window
        and has not expired since; None otherwise. Reads neither the token's claims nor the
        database, so an event loop may ask it."""
        cached = self._verified.get(token_hash(access_token))
        if cached is None:
            return None
        checked_at, principal = cached
        if time.monotonic() - checked_at > self.verify_cache_s:
            return None
        if principal.expires_at <= self.clock():
            return None
        return principal

    def authenticate(self, access_token: str) -> Principal:
        """The principal of a valid access token; AuthFailed otherwise."""
        cached = self.recently_verified(access_token)
        if cached is not None:
            return cached
        claims = self._decode(access_token)
        digest = token_hash(access_token)
        try:
            user_id = uuid_mod.UUID(claims["sub"])
        except (ValueError, TypeError, AttributeError):
            raise AuthFailed("your session is not valid; sign in again") from None
        with self.sessions.reading() as connection:
            state = auth_repo.token_state(connection, user_id, digest)
            if state is None:
                raise AuthFailed("your session is not valid; sign in again")
            user, invalidated_at, blacklisted = state
            record = UserRecord.of(user)
        if blacklisted:
            raise AuthFailed("you signed out; sign in again")
        if not record.is_active:
            raise AuthFailed("your dbquery account is deactivated; ask a dbquery admin")
        if invalidated_at is not None and float(claims["iat"]) < invalidated_at.timestamp():
            raise AuthFailed("your sessions were signed out; sign in again")
        principal = Principal(record, digest, _from_timestamp(claims["exp"]))
        with self._cache_lock:
            if len(self._verified) >= VERIFY_CACHE_MAX:
                self._verified.clear()
            self._verified[digest] = (time.monotonic(), principal)
        return principal

    def _decode(self, access_token: str) -> dict:
        try:
            return jwt.decode(
                access_token,
                self.secret,
                algorithms=[ALGORITHM],
                options={"require": ["sub", "role", "iat", "exp", "jti"]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthFailed("your session has expired; sign in again") from None
        except jwt.InvalidTokenError:
            raise AuthFailed("your session is not valid; sign in again") from None

    def forget_verified(self) -> None:
        with self._cache_lock:
            self._verified.clear()

    # --- refresh, logout, invalidation ---------------------------------------------------

    def refresh(self, refresh_token: str) -> Tokens:
        """New tokens for a live refresh token, which is revoked (rotation)."""
        now = self.clock()
        stolen = False
        with self.sessions.begin() as session:
            row = auth_repo.refresh_token_for_update(session, token_hash(refresh_token))
            if row is None or row.expires_at <= now:
                raise AuthFailed("your session has expired; sign in again")
            if row.revoked_at is not None:
                # A revoked token comes back only if someone kept a copy: end every session.
                auth_repo.revoke_all_refresh_tokens(session, row.user_id, now)
                auth_repo.invalidate_user_tokens(session, row.user_id, now)
                stolen = True
            else:
                row.revoked_at = now
                user = repo.user_by_id(session, row.user_id)
                if user is None or not user.is_active:
                    raise AuthFailed("your dbquery account is deactivated; ask a dbquery admin")
                record = UserRecord.of(user)
        if stolen:
            self.forget_verified()
            raise AuthFailed("this session was already renewed elsewhere; sign in again")
        return self.issue(record)

    def logout(self, access_token: str | None, refresh_token: str | None) -> None:
        now = self.clock()
        with self.sessions.begin() as session:
            if access_token:
                try:
                    claims = self._decode(access_token)
                    user_id = uuid_mod.UUID(claims["sub"])
                except (AuthFailed, ValueError):
                    claims = None
                if claims is not None:
                    auth_repo.blacklist_access_token(
                        session, token_hash(access_token), user_id, _from_timestamp(claims["exp"])
                    )
            if refresh_token:
                row = auth_repo.refresh_token_for_update(session, token_hash(refresh_token))
                if row is not None and row.revoked_at is None:
                    row.revoked_at = now
        self.forget_verified()

    def sign_out_everywhere(self, user_id: uuid_mod.UUID) -> None:
        with self.sessions.begin() as session:
            self.invalidate_in(session, user_id)
        self.forget_verified()

    def invalidate_in(self, session, user_id: uuid_mod.UUID) -> None:
        """Inside the caller's transaction: end every session of this user."""
        now = self.clock()
        auth_repo.revoke_all_refresh_tokens(session, user_id, now)
        auth_repo.invalidate_user_tokens(session, user_id, now)
        self.forget_verified()

    def sessions_of(self, user_id: uuid_mod.UUID, current_refresh: str | None) -> list[SessionInfo]:
        current = token_hash(current_refresh) if current_refresh else None
        with self.sessions() as session:
            rows = auth_repo.live_refresh_tokens(session, user_id, self.clock())
            return [
                SessionInfo(row.id, row.created_at, row.expires_at, row.token_hash == current)
                for row in rows
            ]

    def revoke_session(self, user_id: uuid_mod.UUID, session_id: uuid_mod.UUID) -> None:
        with self.sessions.begin() as session:
            if not auth_repo.revoke_refresh_token(session, user_id, session_id, self.clock()):
                raise InvalidSubmission("session", "no such session of yours is open")

    # --- password ------------------------------------------------------------------------

    def password_sign_in(self, email: str, password: str, client: str) -> Tokens:
        email = (email or "").strip().lower()
        keys = [f"email:{email}", f"ip:{client}"]
        self._check_throttle(keys)
        with self.sessions() as session:
            user = repo.user_by_email(session, email) if email else None
            stored = user.password_hash if user is not None else None
            record = UserRecord.of(user) if user is not None else None
        ok = self._verify_password(stored, password or "")
        if not ok or record is None or not record.is_active:
            self._record_failure(keys)
            raise AuthFailed(WRONG_CREDENTIALS)
        rehashed = self.hasher.hash(password) if self.hasher.check_needs_rehash(stored) else None
        with self.sessions.begin() as session:
            auth_repo.clear_throttle(session, keys[0])
            if rehashed is not None:
                auth_repo.replace_password_hash(session, record.id, stored, rehashed)
        return self.issue(record)

    @cached_property
    def _decoy(self) -> str:
        # A hash to verify against when the email is unknown, so the answer takes as long.
        return self.hasher.hash(secrets.token_hex(16))

    def _verify_password(self, stored: str | None, password: str) -> bool:
        if len(password) > PASSWORD_MAX_CHARS:
            return False
        try:
            return self.hasher.verify(stored or self._decoy, password) and stored is not None
        except (VerificationError, InvalidHashError):
            return False

    def set_password(self, email: str, password: str) -> UserRecord:
        """Set a user's password; their existing sessions end (a password change)."""
        user = set_password(self.sessions, email, password, self.hasher, self.clock)
        self.forget_verified()
        return user

    # --- throttling ----------------------------------------------------------------------

    def _check_throttle(self, keys: list[str]) -> None:
        now = self.clock()
        with self.sessions() as session:
            rows = auth_repo.throttles(session, keys)
            wait = max(
                ((row.locked_until - now).total_seconds() for row in rows if row.locked_until),
                default=0,
            )
        if wait > 0:
            seconds = int(wait) + 1
            raise Throttled(
                f"too many failed sign-ins; wait {seconds} seconds before trying again", seconds
            )

    def _record_failure(self, keys: list[str]) -> None:
        now = self.clock()
        with self.sessions.begin() as session:
            for key in keys:
                row = auth_repo.throttle_for_update(session, key, now)
                if now - row.last_failure_at > FAILURE_WINDOW:
                    row.failures = 0
                row.failures += 1
                row.last_failure_at = now
                free = FREE_FAILURES[key.partition(":")[0]]
                if row.failures >= free:
                    delay = timedelta(seconds=2 ** (row.failures - free))
                    row.locked_until = now + min(delay, MAX_LOCK)

    # --- one-time links ------------------------------------------------------------------

    def send_sign_in_link(self, email: str) -> None:
        """Send a one-time sign-in link privately to the person, if they have a linked account.

        The caller answers the same whatever happens (LINK_SENT), so nobody can probe emails.
        """
        now = self.clock()
        with self.sessions.begin() as session:
            user = repo.user_by_email(session, (email or "").strip()) if email else None
            if user is None or not user.is_active or not user.slack_user_id:
                return
            if (
                auth_repo.links_sent_since(session, user.id, now - SIGN_IN_LINK_TTL)
                >= LINKS_PER_WINDOW
            ):
                return
            token = secrets.token_urlsafe(32)
            expires = now + SIGN_IN_LINK_TTL
            auth_repo.add_sign_in_link(session, user.id, token_hash(token), "sign_in", expires, now)
            record = UserRecord.of(user)
        self.events.publish(
            PrivateNotice(
                person=record,
                text=(
                    "Someone (hopefully you) asked to sign in to dbquery on the web. The link "
                    "works once, for 10 minutes. If it was not you, ignore this message."
                ),
                link_url=f"{self.public_url}/auth/link?token={token}",
                link_label="Sign in to dbquery",
                expires_at=expires,
            )
        )

    def redeem_sign_in_link(self, token: str) -> Tokens:
        now = self.clock()
        with self.sessions.begin() as session:
            user_id = auth_repo.use_sign_in_link(session, token_hash(token or ""), "sign_in", now)
            user = repo.user_by_id(session, user_id) if user_id else None
            if user is None or not user.is_active:
                raise AuthFailed(LINK_INVALID)
            record = UserRecord.of(user)
        return self.issue(record)

    def send_set_password_link(self, email: str) -> UserRecord:
        """An admin's action: send the person a private link to set their password (24 h, once)."""
        now = self.clock()
        with self.sessions.begin() as session:
            user = repo.user_by_email(session, (email or "").strip())
            if user is None:
                raise InvalidSubmission("email", f"no user with email {email}")
            if not user.is_active:
                raise InvalidSubmission("email", f"{user.email} is deactivated")
            if not user.slack_user_id:
                raise InvalidSubmission(
                    "email", f"{user.email} has no linked Slack account to send the link to"
                )
            token = secrets.token_urlsafe(32)
            expires = now + SET_PASSWORD_LINK_TTL
            auth_repo.add_sign_in_link(
                session, user.id, token_hash(token), "set_password", expires, now
            )
            record = UserRecord.of(user)
        self.events.publish(
            PrivateNotice(
                person=record,
                text=(
                    "A dbquery admin invited you to set a password for signing in to dbquery on "
                    "the web. The link works once, for 24 hours."
                ),
                link_url=f"{self.public_url}/auth/set-password?token={token}",
                link_label="Set your dbquery password",
                expires_at=expires,
            )
        )
        return record

    def set_password_with_link(self, token: str, password: str) -> UserRecord:
        now = self.clock()
        digest = token_hash(token or "")
        with self.sessions() as session:
            link = auth_repo.link_by_hash(session, digest, "set_password")
            user = repo.user_by_id(session, link.user_id) if link is not None else None
            if link is None or link.used_at is not None or link.expires_at <= now or user is None:
                raise AuthFailed(LINK_INVALID)
            email = user.email
        check_password_rules(password, email)
        hashed = self.hasher.hash(password)
        with self.sessions.begin() as session:
            user_id = auth_repo.use_sign_in_link(session, digest, "set_password", now)
            user = repo.user_by_id(session, user_id) if user_id else None
            if user is None:
                raise AuthFailed(LINK_INVALID)
            user.password_hash = hashed
            self.invalidate_in(session, user.id)
            return UserRecord.of(user)


def _from_timestamp(value: float) -> datetime:
    return datetime.fromtimestamp(float(value), UTC)
