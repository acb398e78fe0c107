"""The migrated portal schema, read back from the live database, is exactly the seed's.

The seed's tables, columns and types are read from the seed document itself (its "Portal
Database" diagram), so the schema is compared with the authority rather than with a copy of it.
The details the diagram leaves out (lengths, nullability, constraints, indexes) and the bot's own
tables are written out here by hand (not derived from db.models) so that a change to the models
or the migrations that drifts from them fails this test; a test checks that this hand-written
list names the seed's columns, and no others beyond the documented extras.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, insert, inspect, select, text
from sqlalchemy.exc import IntegrityError

from db.models import QueryRequest, SlackMessage, User
from db.session import make_engine
from tests.portal import BACKENDS, fresh_portal_url

REPO_ROOT = Path(__file__).resolve().parents[2]
SEED_DOCUMENT = REPO_ROOT.parent / "shared" / "seed" / "000_f03e025317eae9b1.txt"
ARCHITECTURE_DOC = REPO_ROOT / "docs" / "ARCHITECTURE.md"
# Columns the product keeps beyond the seed's, each documented in docs/ARCHITECTURE.md.
EXTRA_COLUMNS = {"query_requests": {"rejected_at"}}
SEED_TABLES = {
    "users",
    "query_requests",
    "refresh_tokens",
    "access_token_blacklist",
    "user_token_invalidation",
}
BOT_TABLES = {
    "slack_messages",
    "outcome_deliveries",
    "approval_reminders",
    "sign_in_links",
    "login_throttle",
    "approval_steps",
    "request_policies",
    "alembic_version",
}


@dataclass(frozen=True)
class Table:
    """Columns are "name kind" or "name kind null"; kinds: uuid int bigint strN text bool tstz."""

    columns: tuple[str, ...]
    primary_key: tuple[str, ...]
    uniques: frozenset[tuple[str, ...]] = frozenset()
    # (columns, referred table, referred columns, ON DELETE)
    foreign_keys: frozenset[tuple[tuple[str, ...], str, tuple[str, ...], str]] = frozenset()
    checks: frozenset[str] = frozenset()
    indexes: dict[str, tuple[str, ...]] = field(default_factory=dict)


def _fk(column: str, table: str, on_delete: str, target: str = "id") -> tuple[Any, ...]:
    return ((column,), table, (target,), on_delete)


EXPECTED: dict[str, Table] = {
    "users": Table(
        columns=(
            "id uuid",
            "email str255",
            "password_hash str255 null",
            "name str255",
            "role str20",
            "pod_id str100 null",
            "slack_user_id str50 null",
            "is_active bool",
            "created_at tstz",
            "updated_at tstz",
        ),
        primary_key=("id",),
        uniques=frozenset({("email",), ("slack_user_id",)}),
        checks=frozenset({"ck_users_role"}),
        indexes={"ix_users_pod_id": ("pod_id",)},
    ),
    "query_requests": Table(
        columns=(
            "id int",
            "uuid uuid",
            "user_id uuid",
            "database_type str20",
            "instance_id str100",
            "instance_name str255",
            "database_name str255",
            "submission_type str20",
            "query_content text null",
            "script_filename str255 null",
            "script_content text null",
            "comments text null",
            "pod_id str100",
            "pod_name str255",
            "status str20",
            "approver_id uuid null",
            "approved_at tstz null",
            "rejected_at tstz null",
            "rejection_reason text null",
            "execution_started_at tstz null",
            "execution_completed_at tstz null",
            "execution_result text null",
            "execution_error text null",
            "created_at tstz",
            "updated_at tstz",
            "approver_email str255 null",
        ),
        primary_key=("id",),
        uniques=frozenset({("uuid",)}),
        foreign_keys=frozenset(
            {
                _fk("user_id", "users", "RESTRICT"),
                _fk("approver_id", "users", "SET NULL"),
            }
        ),
        checks=frozenset(
            {
                "ck_query_requests_status",
                "ck_query_requests_database_type",
                "ck_query_requests_submission_type",
                "ck_query_requests_content_matches_type",
            }
        ),
        indexes={
            "ix_query_requests_status_created_at_id": ("status", "created_at", "id"),
            "ix_query_requests_user_id": ("user_id",),
            "ix_query_requests_pod_id_status_created_at_id": (
                "pod_id",
                "status",
                "created_at",
                "id",
            ),
            "ix_query_requests_created_at_id": ("created_at", "id"),
        },
    ),
    "refresh_tokens": Table(
        columns=(
            "id uuid",
            "user_id uuid",
            "token_hash str255",
            "expires_at tstz",
            "revoked_at tstz null",
            "created_at tstz",
        ),
        primary_key=("id",),
        uniques=frozenset({("token_hash",)}),
        foreign_keys=frozenset({_fk("user_id", "users", "CASCADE")}),
        indexes={
            "ix_refresh_tokens_user_id": ("user_id",),
            "ix_refresh_tokens_expires_at": ("expires_at",),
        },
    ),
    "access_token_blacklist": Table(
        columns=(
            "id int",
            "token_hash str255",
            "user_id uuid null",
            "expires_at tstz",
            "created_at tstz",
        ),
        primary_key=("id",),
        uniques=frozenset({("token_hash",)}),
        foreign_keys=frozenset({_fk("user_id", "users", "CASCADE")}),
        indexes={"ix_access_token_blacklist_expires_at": ("expires_at",)},
    ),
    "user_token_invalidation": Table(
        columns=("user_id uuid", "invalidated_at tstz"),
        primary_key=("user_id",),
        foreign_keys=frozenset({_fk("user_id", "users", "CASCADE")}),
    ),
    "slack_messages": Table(
        columns=(
            "id int",
            "request_id int",
            "purpose str20",
            "slack_user_id str50 null",
            "channel_id str50",
            "message_ts str50",
            "created_at tstz",
        ),
        primary_key=("id",),
        uniques=frozenset({("request_id", "purpose", "channel_id")}),
        foreign_keys=frozenset({_fk("request_id", "query_requests", "CASCADE")}),
        checks=frozenset({"ck_slack_messages_purpose"}),
        indexes={"ix_slack_messages_request_id": ("request_id",)},
    ),
    "outcome_deliveries": Table(
        columns=(
            "request_id int",
            "result_file text null",
            "attempts int",
            "attempt_started_at tstz null",
            "delivered_at tstz null",
            "last_error text null",
            "created_at tstz",
            "reply_ts str50 null",
        ),
        primary_key=("request_id",),
        foreign_keys=frozenset({_fk("request_id", "query_requests", "CASCADE")}),
    ),
    "approval_reminders": Table(
        columns=("request_id int", "reminded_at tstz null", "escalated_at tstz null"),
        primary_key=("request_id",),
        foreign_keys=frozenset({_fk("request_id", "query_requests", "CASCADE")}),
    ),
    "sign_in_links": Table(
        columns=(
            "id uuid",
            "user_id uuid",
            "token_hash str64",
            "purpose str20",
            "expires_at tstz",
            "used_at tstz null",
            "created_at tstz",
        ),
        primary_key=("id",),
        uniques=frozenset({("token_hash",)}),
        foreign_keys=frozenset({_fk("user_id", "users", "CASCADE")}),
        checks=frozenset({"ck_sign_in_links_purpose"}),
        indexes={
            "ix_sign_in_links_user_id": ("user_id",),
            "ix_sign_in_links_expires_at": ("expires_at",),
        },
    ),
    "login_throttle": Table(
        columns=(
            "key str300",
            "failures int",
            "last_failure_at tstz",
            "locked_until tstz null",
        ),
        primary_key=("key",),
    ),
    "approval_steps": Table(
        columns=(
            "id int",
            "request_id int",
            "step int",
            "approver_id uuid null",
            "approver_email str255",
            "approved_at tstz",
            "policy_name str100 null",
        ),
        primary_key=("id",),
        uniques=frozenset({("request_id", "step"), ("request_id", "approver_id")}),
        foreign_keys=frozenset(
            {
                _fk("request_id", "query_requests", "CASCADE"),
                _fk("approver_id", "users", "SET NULL"),
            }
        ),
        checks=frozenset({"ck_approval_steps_step"}),
    ),
    "request_policies": Table(
        columns=(
            "request_id int",
            "risk_level str20 null",
            "risk_reasons text null",
            "estimate_summary text null",
            "estimated_rows bigint null",
            "approvals_required int",
            "second_approval_policy str100 null",
            "second_approval_group str100 null",
            "run_after tstz null",
            "not_before tstz null",
            "expires_at tstz null",
            "rerun_of int null",
        ),
        primary_key=("request_id",),
        foreign_keys=frozenset(
            {
                _fk("request_id", "query_requests", "CASCADE"),
                _fk("rerun_of", "query_requests", "SET NULL"),
            }
        ),
        checks=frozenset(
            {"ck_request_policies_risk_level", "ck_request_policies_approvals_required"}
        ),
        indexes={
            "ix_request_policies_not_before": ("not_before",),
            "ix_request_policies_expires_at": ("expires_at",),
            "ix_request_policies_rerun_of": ("rerun_of",),
        },
    ),
    "alembic_version": Table(columns=("version_num str32",), primary_key=("version_num",)),
}
# Trigram indexes for the listings' text search exist on PostgreSQL only.
PG_ONLY_INDEXES = {
    "query_requests": {
        f"ix_query_requests_{column}_trgm": (column,)
        for column in ("query_content", "comments", "script_filename")
    }
}

# information_schema.columns (data_type, character_maximum_length) for each kind.
PG_TYPES: dict[str, tuple[str, int | None]] = {
    "uuid": ("uuid", None),
    "int": ("integer", None),
    "bigint": ("bigint", None),
    "text": ("text", None),
    "bool": ("boolean", None),
    "tstz": ("timestamp with time zone", None),
}


def _pg_type(kind: str) -> tuple[str, int | None]:
    if kind.startswith("str"):
        return ("character varying", int(kind[3:]))
    return PG_TYPES[kind]


def _column_spec(spec: str) -> tuple[str, str, bool]:
    name, kind, *rest = spec.split()
    return name, kind, rest == ["null"]


@dataclass(frozen=True)
class SeedColumn:
    name: str
    type: str  # as the diagram writes it: uuid, serial, varchar, text, boolean, timestamp
    keys: frozenset[str]  # PK, FK, UK


def parse_seed_portal_tables(document: str) -> dict[str, list[SeedColumn]]:
    """The tables of the mermaid erDiagram under the document's "Portal Database" heading."""
    heading = re.search(r"^#+ .*Portal Database.*$", document, re.MULTILINE)
    if heading is None:
        raise ValueError("no 'Portal Database' heading")
    diagram = re.search(r"```mermaid\s*\nerDiagram\n(.*?)```", document[heading.end() :], re.S)
    if diagram is None:
        raise ValueError("no mermaid erDiagram under the 'Portal Database' heading")
    tables: dict[str, list[SeedColumn]] = {}
    for name, body in re.findall(r"^\s*(\w+)\s*\{(.*?)^\s*\}", diagram.group(1), re.M | re.S):
        columns = []
        for line in body.strip().splitlines():
            # `type name [PK|FK|UK[, ...]] ["comment"]`
            match = re.fullmatch(r'\s*(\w+)\s+(\w+)((?:\s*,?\s*(?:PK|FK|UK))*)\s*(".*")?\s*', line)
            if match is None:
                raise ValueError(f"cannot read the column line {line.strip()!r} of {name}")
            keys = frozenset(re.findall(r"PK|FK|UK", match.group(3) or ""))
            columns.append(SeedColumn(match.group(2), match.group(1), keys))
        tables[name] = columns
    return tables


@pytest.fixture(scope="module")
def seed() -> dict[str, list[SeedColumn]]:
    if not SEED_DOCUMENT.is_file():
        pytest.fail(
            f"the seed document {SEED_DOCUMENT} is missing: the portal schema is checked against"
            " its 'Portal Database' diagram, so this test cannot run without it"
        )
    return parse_seed_portal_tables(SEED_DOCUMENT.read_text(encoding="utf-8"))


def test_the_seed_diagram_names_five_tables_and_48_columns(seed):
    assert set(seed) == SEED_TABLES
    assert sum(len(columns) for columns in seed.values()) == 48


def test_a_seed_document_without_the_diagram_is_refused_clearly():
    with pytest.raises(ValueError, match="no 'Portal Database' heading"):
        parse_seed_portal_tables("# Something else\n")
    with pytest.raises(ValueError, match="no mermaid erDiagram"):
        parse_seed_portal_tables("## Portal Database (PostgreSQL)\n\nprose only\n")


def test_the_hand_written_details_name_exactly_the_seed_columns_and_the_extras(seed):
    for table, columns in seed.items():
        listed = {_column_spec(spec)[0] for spec in EXPECTED[table].columns}
        assert listed == {c.name for c in columns} | EXTRA_COLUMNS.get(table, set()), table


def test_every_extra_column_is_documented():
    documented = ARCHITECTURE_DOC.read_text(encoding="utf-8")
    for table, columns in EXTRA_COLUMNS.items():
        for column in columns:
            assert f"`{table}.{column}`" in documented, f"{table}.{column} is not documented"


@pytest.fixture(scope="module")
def engines(make_pg_database, tmp_path_factory) -> Iterator[dict[str, Engine]]:
    built = {
        backend: make_engine(
            fresh_portal_url(backend, make_pg_database, tmp_path_factory.mktemp("schema"))
        )
        for backend in BACKENDS
    }
    yield built
    for engine in built.values():
        engine.dispose()


def live_table(engine: Engine, table: str) -> Table:
    """The table as the database reports it, in the same shape as EXPECTED."""
    inspector = inspect(engine)
    columns = inspector.get_columns(table)
    expected_kinds = {name: kind for name, kind, _ in map(_column_spec, EXPECTED[table].columns)}
    return Table(
        # Kinds are checked against the server's own types in test_postgresql_column_types.
        columns=tuple(
            f"{c['name']} {expected_kinds.get(c['name'], '?')}" + (" null" if c["nullable"] else "")
            for c in columns
        ),
        primary_key=tuple(inspector.get_pk_constraint(table)["constrained_columns"]),
        uniques=frozenset(
            tuple(u["column_names"]) for u in inspector.get_unique_constraints(table)
        ),
        foreign_keys=frozenset(
            (
                tuple(fk["constrained_columns"]),
                fk["referred_table"],
                tuple(fk["referred_columns"]),
                fk["options"].get("ondelete", "NO ACTION").upper(),
            )
            for fk in inspector.get_foreign_keys(table)
        ),
        checks=frozenset(ck["name"] for ck in inspector.get_check_constraints(table)),
        # PostgreSQL also lists the indexes behind unique constraints; those are checked above.
        # Expression indexes (lower(email)) are checked by behaviour below: SQLite cannot
        # reflect them.
        indexes={
            ix["name"]: tuple(ix["column_names"])
            for ix in inspector.get_indexes(table)
            if not ix.get("duplicates_constraint") and None not in ix["column_names"]
        },
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_migrated_database_has_exactly_the_seed_and_bot_tables(engines, backend):
    tables = set(inspect(engines[backend]).get_table_names())
    assert SEED_TABLES <= tables
    assert tables == SEED_TABLES | BOT_TABLES
    assert set(EXPECTED) == tables


@pytest.mark.parametrize("table", sorted(EXPECTED))
@pytest.mark.parametrize("backend", BACKENDS)
def test_table_matches_the_seed(engines, backend, table):
    expected = EXPECTED[table]
    if backend == "postgresql" and table in PG_ONLY_INDEXES:
        expected = replace(expected, indexes=expected.indexes | PG_ONLY_INDEXES[table])
    assert live_table(engines[backend], table) == expected


def test_postgresql_column_types(engines):
    """Types as PostgreSQL's information_schema reports them: uuid, varchar(n), timestamptz."""
    with engines["postgresql"].connect() as conn:
        rows = conn.execute(
            text(
                "SELECT table_name, column_name, data_type, character_maximum_length"
                " FROM information_schema.columns WHERE table_schema = 'public'"
            )
        ).all()
    actual = {(t, c): (d, n) for t, c, d, n in rows}
    expected = {
        (table, name): _pg_type(kind)
        for table, spec in EXPECTED.items()
        for name, kind, _ in map(_column_spec, spec.columns)
    }
    assert actual == expected


def test_postgresql_nullability_from_information_schema(engines):
    with engines["postgresql"].connect() as conn:
        rows = conn.execute(
            text(
                "SELECT table_name, column_name, is_nullable"
                " FROM information_schema.columns WHERE table_schema = 'public'"
            )
        ).all()
    actual = {(t, c): n == "YES" for t, c, n in rows}
    expected = {
        (table, name): nullable
        for table, spec in EXPECTED.items()
        for name, _, nullable in map(_column_spec, spec.columns)
    }
    assert actual == expected


# --- the constraints hold, not just exist ----------------------------------------------------


def _user_row(**overrides: Any) -> dict[str, Any]:
    row = {
        "id": uuid.uuid4(),
        "email": f"{uuid.uuid4().hex[:8]}@example.com",
        "name": "Someone",
        "role": "developer",
        "pod_id": "payments",
        "is_active": True,
    }
    return row | overrides


def _request_row(user_id: uuid.UUID, **overrides: Any) -> dict[str, Any]:
    row = {
        "uuid": uuid.uuid4(),
        "user_id": user_id,
        "database_type": "postgresql",
        "instance_id": "pg-shop",
        "instance_name": "Shop PostgreSQL",
        "database_name": "shop",
        "submission_type": "query",
        "query_content": "SELECT 1",
        "pod_id": "payments",
        "pod_name": "Payments",
        "status": "pending",
    }
    return row | overrides


def _insert_and_roll_back(engine: Engine, build_rows) -> None:
    """Insert the rows from build_rows(user_id) after a valid user, then undo everything."""
    with engine.connect() as conn:
        transaction = conn.begin()
        try:
            user = _user_row()
            conn.execute(insert(User).values(**user))
            for model, values in build_rows(user["id"]):
                conn.execute(insert(model).values(**values))
        finally:
            transaction.rollback()


BAD_ROWS = {
    "role": lambda uid: [(User, _user_row(role="superuser"))],
    "status": lambda uid: [(QueryRequest, _request_row(uid, status="paused"))],
    "database_type": lambda uid: [(QueryRequest, _request_row(uid, database_type="oracle"))],
    "submission_type": lambda uid: [(QueryRequest, _request_row(uid, submission_type="file"))],
    "query_without_content": lambda uid: [(QueryRequest, _request_row(uid, query_content=None))],
    "unknown_requester": lambda uid: [(QueryRequest, _request_row(uuid.uuid4()))],
    "duplicate_email": lambda uid: [
        (User, _user_row(email="twice@example.com")),
        (User, _user_row(email="twice@example.com")),
    ],
}


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_valid_user_and_request_are_accepted(engines, backend):
    """The control for the rejections below: the base rows themselves are fine."""
    engine = engines[backend]
    _insert_and_roll_back(engine, lambda uid: [(QueryRequest, _request_row(uid))])
    with engine.connect() as conn:
        assert conn.execute(select(QueryRequest.id)).all() == []


@pytest.mark.parametrize("case", sorted(BAD_ROWS))
@pytest.mark.parametrize("backend", BACKENDS)
def test_database_rejects_rows_breaking_the_constraints(engines, backend, case):
    with pytest.raises(IntegrityError):
        _insert_and_roll_back(engines[backend], BAD_ROWS[case])


@pytest.mark.parametrize("backend", BACKENDS)
def test_slack_message_purpose_is_checked(engines, backend):
    def rows(uid):
        request = _request_row(uid, id=1)
        message = {
            "request_id": 1,
            "purpose": "gossip",
            "channel_id": "D1",
            "message_ts": "1.2",
        }
        return [(QueryRequest, request), (SlackMessage, message)]

    with pytest.raises(IntegrityError, match="purpose"):
        _insert_and_roll_back(engines[backend], rows)


@pytest.mark.parametrize("backend", BACKENDS)
def test_timestamps_keep_the_instant_and_read_back_in_utc(engines, backend):
    engine = engines[backend]
    plus_two = timezone(timedelta(hours=2))
    written = datetime(2024, 3, 1, 12, 30, 15, 250_000, tzinfo=plus_two)
    user = _user_row(created_at=written, updated_at=written)
    with engine.connect() as conn:
        transaction = conn.begin()
        try:
            conn.execute(insert(User).values(**user))
            read = conn.execute(select(User.created_at).where(User.id == user["id"])).scalar_one()
        finally:
            transaction.rollback()
    assert read == written
    assert read.utcoffset() == timedelta(0)
    assert read.tzinfo == UTC


SQLITE_TYPES = {
    "uuid": "CHAR(32)",
    "int": "INTEGER",
    "bigint": "BIGINT",
    "text": "TEXT",
    "bool": "BOOLEAN",
    "tstz": "DATETIME",
}


def test_sqlite_column_types(engines):
    inspector = inspect(engines["sqlite"])
    actual = {
        (table, c["name"]): str(c["type"])
        for table in EXPECTED
        for c in inspector.get_columns(table)
    }
    expected = {
        (table, name): f"VARCHAR({kind[3:]})" if kind.startswith("str") else SQLITE_TYPES[kind]
        for table, spec in EXPECTED.items()
        for name, kind, _ in map(_column_spec, spec.columns)
    }
    assert actual == expected


@pytest.mark.parametrize("backend", BACKENDS)
def test_emails_are_unique_whatever_their_case(engines, backend):
    insert = text(
        "INSERT INTO users (id, email, name, role, is_active, created_at, updated_at) "
        "VALUES (:id, :email, 'X', 'developer', true, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
    )
    engine = engines[backend]
    uuid_of = (lambda u: u.hex) if backend == "sqlite" else str
    with engine.begin() as conn:
        conn.execute(insert, {"id": uuid_of(uuid.uuid4()), "email": "Case@Example.com"})
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(insert, {"id": uuid_of(uuid.uuid4()), "email": "case@example.COM"})
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM users WHERE lower(email) = 'case@example.com'"))


# --- the live schema against the seed document ------------------------------------------------

# information_schema.columns data_type of each type the seed's diagram uses.
SEED_PG_TYPES = {
    "uuid": "uuid",
    "serial": "integer",
    "varchar": "character varying",
    "text": "text",
    "boolean": "boolean",
    "timestamp": "timestamp with time zone",
}
SEED_SQLITE_TYPES = {
    "uuid": "CHAR(32)",
    "serial": "INTEGER",
    "varchar": "VARCHAR",
    "text": "TEXT",
    "boolean": "BOOLEAN",
    "timestamp": "DATETIME",
}


@pytest.mark.parametrize("backend", BACKENDS)
def test_migrated_seed_tables_have_the_seed_columns_and_only_the_documented_extras(
    engines, backend, seed
):
    inspector = inspect(engines[backend])
    for table, columns in seed.items():
        live = {c["name"] for c in inspector.get_columns(table)}
        expected = {c.name for c in columns} | EXTRA_COLUMNS.get(table, set())
        assert live == expected, (
            f"{table}: missing {sorted(expected - live)}, not in the seed {sorted(live - expected)}"
        )
    seed_columns = sum(len(columns) for columns in seed.values())
    live_seed_columns = sum(len(inspector.get_columns(table)) for table in seed)
    extras = sum(len(columns) for columns in EXTRA_COLUMNS.values())
    assert (seed_columns, live_seed_columns) == (48, 48 + extras)


def test_postgresql_types_are_the_seed_types(engines, seed):
    with engines["postgresql"].connect() as conn:
        rows = conn.execute(
            text(
                "SELECT table_name, column_name, data_type, column_default"
                " FROM information_schema.columns WHERE table_schema = 'public'"
            )
        ).all()
    live = {(t, c): (d, default or "") for t, c, d, default in rows}
    for table, columns in seed.items():
        for column in columns:
            data_type, default = live[(table, column.name)]
            assert data_type == SEED_PG_TYPES[column.type], f"{table}.{column.name}"
            if column.type == "serial":
                assert default.startswith("nextval("), f"{table}.{column.name} is not serial"


def test_sqlite_types_are_the_seed_types(engines, seed):
    inspector = inspect(engines["sqlite"])
    for table, columns in seed.items():
        live = {c["name"]: str(c["type"]) for c in inspector.get_columns(table)}
        for column in columns:
            assert live[column.name].startswith(SEED_SQLITE_TYPES[column.type]), (
                f"{table}.{column.name}: {live[column.name]}"
            )


@pytest.mark.parametrize("backend", BACKENDS)
def test_seed_keys_are_primary_keys_and_unique_constraints(engines, backend, seed):
    inspector = inspect(engines[backend])
    for table, columns in seed.items():
        primary = {c.name for c in columns if "PK" in c.keys}
        assert set(inspector.get_pk_constraint(table)["constrained_columns"]) == primary, table
        uniques = {tuple(u["column_names"]) for u in inspector.get_unique_constraints(table)}
        for column in columns:
            if "UK" in column.keys:
                assert (column.name,) in uniques, f"{table}.{column.name} is not unique"
        referencing = {
            c for fk in inspector.get_foreign_keys(table) for c in fk["constrained_columns"]
        }
        assert {c.name for c in columns if "FK" in c.keys} <= referencing, table
