"""`migrate` creates the schema from nothing, is idempotent, and the models agree with it."""

from __future__ import annotations

import multiprocessing
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, func, inspect, select, text

from db.errors import PortalDatabaseError
from db.migrate import alembic_config, current_revision, head_revision, migrate
from db.models import Base, User, UTCDateTime
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
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "include_object": _for_this_dialect(conn)}
        )
        assert compare_metadata(context, Base.metadata) == []


def _for_this_dialect(conn):
    """Leave out objects the models create on another dialect only (`.ddl_if(dialect=...)`)."""

    def include(obj, name, type_, reflected, compare_to) -> bool:
        only_on = getattr(getattr(obj, "_ddl_if", None), "dialect", None)
        return only_on is None or only_on == conn.dialect.name

    return include


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


# --- upgrading a portal database that holds rows ---------------------------------------------

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)


def _table(table_name: str, /, **columns: Any) -> Any:
    return sa.table(table_name, *(sa.column(column, kind) for column, kind in columns.items()))


USERS = _table("users", id=sa.Uuid(), email=sa.String(), name=sa.String(), role=sa.String(),
               pod_id=sa.String(), is_active=sa.Boolean(), created_at=UTCDateTime(),
               updated_at=UTCDateTime())  # fmt: skip
REQUEST_COLUMNS = dict(id=sa.Integer(), uuid=sa.Uuid(), user_id=sa.Uuid(),
                       database_type=sa.String(), instance_id=sa.String(),
                       instance_name=sa.String(), database_name=sa.String(),
                       submission_type=sa.String(), query_content=sa.Text(), pod_id=sa.String(),
                       pod_name=sa.String(), status=sa.String(), approver_id=sa.Uuid(),
                       approved_at=UTCDateTime(), rejected_at=UTCDateTime(),
                       rejection_reason=sa.Text(), execution_started_at=UTCDateTime(),
                       execution_result=sa.Text(), created_at=UTCDateTime(),
                       updated_at=UTCDateTime())  # fmt: skip
REQUESTS_0004 = _table("query_requests", **REQUEST_COLUMNS, executed_at=UTCDateTime())
REQUESTS_0005 = _table(
    "query_requests",
    **REQUEST_COLUMNS,
    execution_completed_at=UTCDateTime(),
    approver_email=sa.String(),
)
TOKEN_COLUMNS = dict(user_id=sa.Uuid(), token_hash=sa.String(), expires_at=UTCDateTime(),
                     created_at=UTCDateTime())  # fmt: skip
REFRESH_0004 = _table("refresh_tokens", id=sa.Integer(), is_revoked=sa.Boolean(), **TOKEN_COLUMNS)
REFRESH_0005 = _table("refresh_tokens", id=sa.Uuid(), revoked_at=UTCDateTime(), **TOKEN_COLUMNS)
BLACKLIST_COLUMNS = dict(id=sa.Integer(), user_id=sa.Uuid(), expires_at=UTCDateTime(),
                         created_at=UTCDateTime())  # fmt: skip
BLACKLIST_0004 = _table("access_token_blacklist", token_jti=sa.String(), **BLACKLIST_COLUMNS)
BLACKLIST_0005 = _table("access_token_blacklist", token_hash=sa.String(), **BLACKLIST_COLUMNS)
UNCHANGED = {
    "user_token_invalidation": _table(
        "user_token_invalidation", user_id=sa.Uuid(), invalidated_at=UTCDateTime()
    ),
    "slack_messages": _table(
        "slack_messages",
        id=sa.Integer(),
        request_id=sa.Integer(),
        purpose=sa.String(),
        slack_user_id=sa.String(),
        channel_id=sa.String(),
        message_ts=sa.String(),
        created_at=UTCDateTime(),
    ),  # fmt: skip
    "outcome_deliveries": _table(
        "outcome_deliveries",
        request_id=sa.Integer(),
        result_file=sa.Text(),
        attempts=sa.Integer(),
        attempt_started_at=UTCDateTime(),
        delivered_at=UTCDateTime(),
        last_error=sa.Text(),
        created_at=UTCDateTime(),
        reply_ts=sa.String(),
    ),  # fmt: skip
    "approval_reminders": _table(
        "approval_reminders",
        request_id=sa.Integer(),
        reminded_at=UTCDateTime(),
        escalated_at=UTCDateTime(),
    ),  # fmt: skip
}


def _at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def _rows_at_0004() -> dict[str, list[dict[str, Any]]]:
    """Rows in every table of a revision-0004 portal database."""
    dev, boss = uuid.uuid4(), uuid.uuid4()
    user = dict(name="Person", is_active=True, created_at=_at(0), updated_at=_at(0))
    request = dict(database_type="postgresql", instance_id="pg-shop", instance_name="Shop",
                   database_name="shop", submission_type="query", pod_id="payments",
                   pod_name="Payments", rejected_at=None, rejection_reason=None,
                   approver_id=None, approved_at=None, execution_started_at=None,
                   executed_at=None, execution_result=None, created_at=_at(1),
                   updated_at=_at(2))  # fmt: skip
    return {
        "users": [
            dict(user, id=dev, email="dev@example.com", role="developer", pod_id="payments"),
            dict(user, id=boss, email="Boss@example.com", role="manager", pod_id="payments"),
        ],
        "query_requests": [
            dict(
                request,
                id=1,
                uuid=uuid.uuid4(),
                user_id=dev,
                query_content="SELECT 1",
                status="completed",
                approver_id=boss,
                approved_at=_at(3),
                execution_started_at=_at(4),
                executed_at=_at(5),
                execution_result='{"row_count": 1}',
            ),  # fmt: skip
            dict(
                request,
                id=2,
                uuid=uuid.uuid4(),
                user_id=dev,
                query_content="DELETE FROM t",
                status="rejected",
                approver_id=boss,
                rejected_at=_at(6),
                rejection_reason="too broad",
            ),  # fmt: skip
            dict(
                request,
                id=3,
                uuid=uuid.uuid4(),
                user_id=dev,
                query_content="SELECT 3",
                status="pending",
            ),  # fmt: skip
        ],
        "refresh_tokens": [
            dict(
                id=1,
                user_id=dev,
                token_hash="h-live",
                expires_at=_at(60),
                is_revoked=False,
                created_at=_at(0),
            ),  # fmt: skip
            dict(
                id=2,
                user_id=dev,
                token_hash="h-revoked",
                expires_at=_at(60),
                is_revoked=True,
                created_at=_at(1),
            ),  # fmt: skip
        ],
        "access_token_blacklist": [
            dict(id=1, token_jti="jti-1", user_id=dev, expires_at=_at(30), created_at=_at(2)),
        ],
        "user_token_invalidation": [dict(user_id=dev, invalidated_at=_at(7))],
        "slack_messages": [
            dict(
                id=1,
                request_id=1,
                purpose="card",
                slack_user_id="U1",
                channel_id="D1",
                message_ts="1.1",
                created_at=_at(1),
            ),  # fmt: skip
            dict(
                id=2,
                request_id=1,
                purpose="approval",
                slack_user_id="U2",
                channel_id="D2",
                message_ts="1.2",
                created_at=_at(1),
            ),  # fmt: skip
        ],
        "outcome_deliveries": [
            dict(
                request_id=1,
                result_file="/r/1.csv",
                attempts=2,
                attempt_started_at=_at(5),
                delivered_at=_at(6),
                last_error="ratelimited",
                created_at=_at(5),
                reply_ts="1.3",
            ),  # fmt: skip
            dict(
                request_id=2,
                result_file=None,
                attempts=0,
                attempt_started_at=None,
                delivered_at=None,
                last_error=None,
                created_at=_at(6),
                reply_ts=None,
            ),  # fmt: skip
        ],
        "approval_reminders": [dict(request_id=3, reminded_at=_at(8), escalated_at=None)],
    }


def _read(engine: Engine, table: Any, order_by: str) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(table).order_by(table.c[order_by])).mappings().all()
    return [dict(row) for row in rows]


def test_upgrading_from_0004_keeps_every_row(empty_engine):
    _alembic(empty_engine, command.upgrade, "0004_outcome_reply")
    rows = _rows_at_0004()
    tables_0004 = {
        "users": USERS,
        "query_requests": REQUESTS_0004,
        "refresh_tokens": REFRESH_0004,
        "access_token_blacklist": BLACKLIST_0004,
        **UNCHANGED,
    }
    with empty_engine.begin() as conn:
        for name, table in tables_0004.items():
            conn.execute(sa.insert(table), rows[name])
    before = datetime.now(UTC) - timedelta(seconds=5)

    assert migrate(empty_engine) == ("0004_outcome_reply", head_revision())

    assert _read(empty_engine, USERS, "email") == sorted(rows["users"], key=lambda r: r["email"])
    for name, table in UNCHANGED.items():
        key = next(iter(table.c)).name
        assert _read(empty_engine, table, key) == rows[name], name
    boss_email = "Boss@example.com"
    assert _read(empty_engine, REQUESTS_0005, "id") == [
        {
            **{k: v for k, v in old.items() if k != "executed_at"},
            "execution_completed_at": old["executed_at"],
            "approver_email": boss_email if old["approver_id"] else None,
        }
        for old in rows["query_requests"]
    ]
    assert _read(empty_engine, BLACKLIST_0005, "id") == [
        {**{k: v for k, v in old.items() if k != "token_jti"}, "token_hash": old["token_jti"]}
        for old in rows["access_token_blacklist"]
    ]
    tokens = _read(empty_engine, REFRESH_0005, "created_at")
    assert [(t["token_hash"], t["user_id"], t["expires_at"], t["created_at"]) for t in tokens] == [
        (old["token_hash"], old["user_id"], old["expires_at"], old["created_at"])
        for old in rows["refresh_tokens"]
    ]
    assert all(isinstance(t["id"], uuid.UUID) for t in tokens)
    live, revoked = tokens
    assert live["revoked_at"] is None
    assert before <= revoked["revoked_at"] <= datetime.now(UTC) + timedelta(seconds=5)

    # And back: the old names, the flag and every row again.
    _alembic(empty_engine, command.downgrade, "0004_outcome_reply")
    assert _read(empty_engine, REQUESTS_0004, "id") == rows["query_requests"]
    assert _read(empty_engine, BLACKLIST_0004, "id") == rows["access_token_blacklist"]
    flags = _read(empty_engine, REFRESH_0004, "created_at")
    assert [(t["token_hash"], t["is_revoked"]) for t in flags] == [
        (old["token_hash"], old["is_revoked"]) for old in rows["refresh_tokens"]
    ]
    for name, table in UNCHANGED.items():
        assert _read(empty_engine, table, next(iter(table.c)).name) == rows[name], name


def test_the_revisions_read_from_the_files_are_alembics_own():
    from alembic.script import ScriptDirectory

    from db.migrate import known_revisions, revision_parents

    scripts = ScriptDirectory.from_config(alembic_config())
    assert head_revision() == scripts.get_current_head()
    assert known_revisions() == {script.revision for script in scripts.walk_revisions()}
    assert revision_parents() == {
        script.revision: script.down_revision for script in scripts.walk_revisions()
    }


def test_serve_checks_the_portal_without_loading_alembic(tmp_path):
    import subprocess
    import sys

    code = (
        "import sys; from db.migrate import current_revision, head_revision;"
        " from db.session import make_engine;"
        f" engine = make_engine('sqlite:///{tmp_path / 'portal.sqlite3'}');"
        " assert current_revision(engine) is None and head_revision();"
        " import app.cli, app.serve;"
        " print(sorted(m for m in ('alembic', 'boto3', 'botocore') if m in sys.modules))"
    )
    answer = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.strip() == "[]"
