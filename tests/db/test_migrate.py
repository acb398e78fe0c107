"""`migrate` creates the schema from nothing, is idempotent, and the models agree with it."""

from __future__ import annotations

import multiprocessing
import uuid
from collections import Counter
from collections.abc import Iterator

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, func, inspect, select, text

from db.errors import PortalDatabaseError
from db.migrate import alembic_config, current_revision, head_revision, migrate
from db.models import Base, User
from db.session import make_engine
from tests.conftest import pg_url_for
from tests.portal import BACKENDS, schema_snapshot, sqlite_url


def _empty_database_url(backend: str, make_pg_database, directory) -> str:
    if backend == "postgresql":
        return pg_url_for(make_pg_database(), "psycopg")
    return sqlite_url(directory)


@pytest.fixture(params=BACKENDS)
def empty_engine(request, make_pg_database, tmp_path) -> Iterator[Engine]:
    """An engine on a brand-new, empty portal database."""
    engine = make_engine(_empty_database_url(request.param, make_pg_database, tmp_path))
    yield engine
    engine.dispose()


def _alembic(engine: Engine, action, revision: str) -> None:
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        action(cfg, revision)


def test_migrate_creates_the_schema_from_nothing(empty_engine):
    assert inspect(empty_engine).get_table_names() == []
    assert current_revision(empty_engine) is None

    assert migrate(empty_engine) == (None, head_revision())

    assert current_revision(empty_engine) == head_revision()
    assert "query_requests" in inspect(empty_engine).get_table_names()


def test_second_migrate_changes_nothing(empty_engine):
    migrate(empty_engine)
    with empty_engine.begin() as conn:
        conn.execute(
            User.__table__.insert().values(
                id=uuid.uuid4(),
                email="kept@example.com",
                name="Kept",
                role="admin",
                is_active=True,
            )
        )
    before = schema_snapshot(empty_engine)

    assert migrate(empty_engine) == (head_revision(), head_revision())

    assert schema_snapshot(empty_engine) == before
    with empty_engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [
            head_revision()
        ]
        assert conn.execute(select(User.email)).scalars().all() == ["kept@example.com"]


def test_models_agree_with_the_migrated_schema(empty_engine):
    """Autogenerate finds nothing to do: db.models and the migrations describe one schema."""
    migrate(empty_engine)
    with empty_engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_upgrading_from_the_seed_revision_gives_the_same_schema(
    empty_engine, make_pg_database, tmp_path
):
    """A portal database created at the seed revision ends up like one migrated in one go."""
    _alembic(empty_engine, command.upgrade, "0001_seed")
    assert current_revision(empty_engine) == "0001_seed"
    assert "slack_messages" not in inspect(empty_engine).get_table_names()

    assert migrate(empty_engine) == ("0001_seed", head_revision())

    backend = "postgresql" if empty_engine.dialect.name == "postgresql" else "sqlite"
    (tmp_path / "ref").mkdir()
    reference = make_engine(_empty_database_url(backend, make_pg_database, tmp_path / "ref"))
    try:
        migrate(reference)
        assert schema_snapshot(empty_engine) == schema_snapshot(reference)
    finally:
        reference.dispose()


def test_downgrade_to_nothing_and_back_restores_the_schema(empty_engine):
    migrate(empty_engine)
    migrated = schema_snapshot(empty_engine)

    _alembic(empty_engine, command.downgrade, "base")
    assert inspect(empty_engine).get_table_names() == ["alembic_version"]
    with empty_engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(text("alembic_version"))).scalar() == 0

    migrate(empty_engine)
    assert schema_snapshot(empty_engine) == migrated


def test_database_migrated_by_a_newer_dbquery_is_refused_and_left_alone(empty_engine):
    migrate(empty_engine)
    with empty_engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0999_future'"))
    before = schema_snapshot(empty_engine)

    with pytest.raises(PortalDatabaseError, match="revision 0999_future.*newer dbquery"):
        migrate(empty_engine)

    assert current_revision(empty_engine) == "0999_future"
    assert schema_snapshot(empty_engine) == before


def _migrate_when_released(url: str, barrier, outcomes) -> None:
    """Runs in a child process: one `serve` replica migrating at start-up."""
    engine = make_engine(url)
    try:
        barrier.wait(timeout=30)
        outcomes.put(migrate(engine))
    except Exception as exc:  # reported to the parent, which asserts there were none
        outcomes.put(f"{type(exc).__name__}: {exc}")
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", BACKENDS)
def test_replicas_migrating_at_once_all_succeed(backend, make_pg_database, tmp_path):
    url = _empty_database_url(backend, make_pg_database, tmp_path)
    replicas = 4
    # fork: the children start at once without re-importing; they build their own engines.
    context = multiprocessing.get_context("fork")
    barrier, outcomes = context.Barrier(replicas), context.Queue()
    processes = [
        context.Process(target=_migrate_when_released, args=(url, barrier, outcomes))
        for _ in range(replicas)
    ]
    for process in processes:
        process.start()
    results = [outcomes.get(timeout=60) for _ in processes]
    for process in processes:
        process.join(timeout=60)

    head = head_revision()
    assert Counter(results) == {(None, head): 1, (head, head): replicas - 1}, results
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            versions = conn.execute(text("SELECT version_num FROM alembic_version")).scalars()
            assert versions.all() == [head]
    finally:
        engine.dispose()
