"""The portal session factory: on SQLite writers serialise and readers never wait behind them;
on PostgreSQL a pooled connection is pinged before use once it has sat idle."""

from __future__ import annotations

import threading

from sqlalchemy import func, select

from db.models import User
from db.session import make_engine, make_session_factory
from tests.portal import migrated_engine, sqlite_url


def test_sqlite_read_does_not_wait_for_an_open_write_transaction(tmp_path):
    url = sqlite_url(tmp_path)
    migrated_engine(url).dispose()
    sessions = make_session_factory(make_engine(url))
    counted: list[int] = []

    with sessions.begin() as writer:
        writer.add(User(email="w@example.com", name="W", role="developer", pod_id="payments"))
        writer.flush()  # the write lock is held from BEGIN IMMEDIATE until this block ends

        def read() -> None:
            with sessions() as reader:
                counted.append(reader.scalar(select(func.count()).select_from(User)))

        thread = threading.Thread(target=read)
        thread.start()
        thread.join(timeout=10)  # a reader queued behind the writer would wait 30 s
        assert not thread.is_alive(), "the read waited for the writer"
    assert counted == [0]  # it saw the last committed state, not the open write

    second_writer_done = threading.Event()

    def write_again() -> None:
        with sessions.begin() as session:
            session.add(User(email="x@example.com", name="X", role="developer", pod_id="payments"))
        second_writer_done.set()

    with sessions.begin() as writer:
        writer.add(User(email="y@example.com", name="Y", role="developer", pod_id="payments"))
        writer.flush()
        thread = threading.Thread(target=write_again)
        thread.start()
        # Writers serialise: the second waits for the lock instead of failing.
        assert not second_writer_done.wait(timeout=0.5)
    thread.join(timeout=30)
    assert second_writer_done.is_set()
    with sessions() as reader:
        assert reader.scalar(select(func.count()).select_from(User)) == 3
    sessions.engine.dispose()


def _backend_pid(engine) -> int:
    with engine.connect() as connection:
        return connection.exec_driver_sql("SELECT pg_backend_pid()").scalar()


def _terminate(admin_url: str, pid: int) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])


def test_a_connection_idle_past_the_threshold_is_pinged_and_replaced(pg_admin_url, pg_database):
    from tests.conftest import pg_url_for

    engine = make_engine(pg_url_for(pg_database), ping_after_idle_s=0)
    dead = _backend_pid(engine)
    _terminate(pg_admin_url, dead)
    assert _backend_pid(engine) != dead  # the ping failed, the pool connected anew
    engine.dispose()


def test_a_connection_used_moments_ago_is_not_pinged(pg_admin_url, pg_database):
    import pytest
    from sqlalchemy.exc import OperationalError

    from tests.conftest import pg_url_for

    engine = make_engine(pg_url_for(pg_database), ping_after_idle_s=3600)
    dead = _backend_pid(engine)
    _terminate(pg_admin_url, dead)
    with pytest.raises(OperationalError):
        _backend_pid(engine)  # no ping: the request in hand fails ...
    assert _backend_pid(engine) != dead  # ... and the pool starts afresh
    engine.dispose()


def test_a_single_read_leaves_no_autocommit_behind_on_the_pooled_connection(pg_database):
    from sqlalchemy import text

    from tests.conftest import pg_url_for

    engine = make_engine(pg_url_for(pg_database), pool_size=1, max_overflow=0)
    sessions = make_session_factory(engine)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE single_reads (x int)"))
    with sessions.reading() as connection:
        assert connection.connection.driver_connection.autocommit  # no BEGIN, no ROLLBACK
    try:
        with sessions.begin() as session:  # the same pooled connection, transactional again
            session.execute(text("INSERT INTO single_reads VALUES (1)"))
            raise RuntimeError("roll back")
    except RuntimeError:
        pass
    with sessions() as session:
        assert session.scalar(text("SELECT count(*) FROM single_reads")) == 0
    engine.dispose()
