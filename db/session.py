"""Engine and session factory for the portal database."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

from db.errors import PortalDatabaseError


def normalise_url(url: str) -> str:
    """Use psycopg 3 for plain postgresql:// URLs (SQLAlchemy's default driver is psycopg2)."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_engine(url: str, *, ping_after_idle_s: float | None = None, **kwargs) -> Engine:
    try:
        parsed = make_url(normalise_url(url))
    except ArgumentError:
        raise PortalDatabaseError(
            "DBQUERY_DATABASE_URL is not a valid SQLAlchemy URL "
            "(e.g. sqlite:///dbquery.sqlite3 or postgresql+psycopg://user@host/db)"
        ) from None
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(
            parsed, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin_immediate)
        return engine
    if parsed.get_backend_name() != "postgresql":
        raise PortalDatabaseError("DBQUERY_DATABASE_URL must be a PostgreSQL or SQLite URL")
    # The session speaks UTC: timestamps then arrive already in the zone the portal hands out,
    # with nothing to convert (a listing reads seven a request). Options in the URL are kept.
    options = " ".join(filter(None, [parsed.query.get("options"), "-c TimeZone=UTC"]))
    parsed = parsed.update_query_dict({"options": options})
    # A bounded connect: an unreachable portal fails a health probe or a command in seconds.
    pool = {"pool_size": 10, "max_overflow": 10, "pool_timeout": 10}
    engine = create_engine(
        parsed,
        # prepare_threshold=None: psycopg never prepares a statement, so PostgreSQL plans each
        # run for its own values. A prepared listing could fall back to one generic plan for
        # every filter, where the best plan depends on them (walk the newest rows for a common
        # status; use a trigram index for a rare word).
        connect_args={"connect_timeout": PORTAL_CONNECT_TIMEOUT_S, "prepare_threshold": None},
        **{**pool, **kwargs},
    )
    _ping_after_idle(engine, PING_AFTER_IDLE_S if ping_after_idle_s is None else ping_after_idle_s)
    return engine


# A pooled connection idle for longer than this is pinged before use.
PING_AFTER_IDLE_S = 1.0


def _ping_after_idle(engine: Engine, after_s: float) -> None:
    """SQLAlchemy's pre-ping, for connections that sat idle only.

    A connection handed back moments ago is used as it is: under load every checkout would
    otherwise cost a round trip (a third of a listing's). One idle longer is pinged first, and
    if the ping fails the pool opens a new one, so a restarted portal goes unnoticed. A portal
    that goes away mid-burst fails the request in hand, as it would have anyway, and the pool
    starts afresh.
    """

    def fresh(_dbapi_connection, record) -> None:
        record.info["idle_since"] = time.monotonic()

    def ping_if_idle(dbapi_connection, record, _proxy) -> None:
        since = record.info.get("idle_since")
        if since is not None and time.monotonic() - since < after_s:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise DisconnectionError("the portal connection did not answer a ping") from exc

    event.listen(engine, "connect", fresh)
    event.listen(engine, "checkin", fresh)
    event.listen(engine, "checkout", ping_if_idle)


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    # pysqlite's own transaction handling is turned off so that BEGIN IMMEDIATE below takes the
    # write lock at the start: two workers then serialise instead of failing on upgrade.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    _set_wal(cur)
    cur.close()


def _set_wal(cur) -> None:
    # Switching a new file to WAL needs an exclusive lock and SQLite does not wait for it
    # (no busy handler): processes opening the file at once retry until one has switched it.
    deadline = time.monotonic() + 30
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _sqlite_begin_immediate(conn) -> None:
    # Reads start deferred so they never queue behind writers (WAL lets them run alongside).
    if conn.get_execution_options().get(SQLITE_DEFERRED_BEGIN):
        conn.exec_driver_sql("BEGIN")
    else:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


# Set on the read sessions: on SQLite their transactions BEGIN deferred; elsewhere it does nothing.
SQLITE_DEFERRED_BEGIN = "dbquery_reads"
PORTAL_CONNECT_TIMEOUT_S = 5


class Sessions:
    """The portal's session factory: `begin()` for a write transaction, a call for reads, and
    `reading()` for a single read statement on a plain connection.

    Writes and reads differ on SQLite: a write transaction takes the write lock at BEGIN (two
    writers serialise instead of failing on lock upgrade), while reads begin deferred.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._writes = sessionmaker(engine, expire_on_commit=False)
        reads = engine.execution_options(**{SQLITE_DEFERRED_BEGIN: True})
        self._reads = sessionmaker(reads, expire_on_commit=False)
        self._single_reads = (
            reads
            if engine.dialect.name == "sqlite"
            else engine.execution_options(isolation_level="AUTOCOMMIT")
        )

    def begin(self):
        return self._writes.begin()

    def __call__(self) -> Session:
        return self._reads()

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """A connection for one read statement (a listing): on PostgreSQL it runs outside a
        transaction, so it costs no BEGIN and ROLLBACK round trips; on SQLite it reads in a
        deferred transaction, as the read sessions do."""
        with self._single_reads.connect() as connection:
            yield connection


def make_session_factory(engine: Engine) -> Sessions:
    return Sessions(engine)
