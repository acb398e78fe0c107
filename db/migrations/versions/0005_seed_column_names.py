"""The seed's column names and types: query_requests.execution_completed_at (was executed_at)
and approver_email (new), refresh_tokens.revoked_at (a timestamp, was the boolean is_revoked)
and a uuid refresh_tokens.id (was an integer), access_token_blacklist.token_hash (was
token_jti). Existing rows keep their data.

Revision ID: 0005_seed_columns
Revises: 0004_outcome_reply
"""

import uuid

import sqlalchemy as sa
from alembic import op

revision = "0005_seed_columns"
down_revision = "0004_outcome_reply"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)
NOW = sa.func.current_timestamp()


def _token_columns() -> list[sa.sql.expression.ColumnClause]:
    # Typed, so that SQLite's stored uuids and timestamps read back as values, not strings.
    return [
        sa.column("user_id", sa.Uuid()),
        sa.column("token_hash", sa.String()),
        sa.column("expires_at", TZ),
        sa.column("created_at", TZ),
    ]


def upgrade() -> None:
    # query_requests is altered in place, never through batch mode: on SQLite a batch copies
    # the table and drops the old one, and with foreign keys on, that drop would cascade to the
    # rows of slack_messages, outcome_deliveries and approval_reminders. SQLite has renamed
    # columns in place since 3.25.
    op.execute("ALTER TABLE query_requests RENAME COLUMN executed_at TO execution_completed_at")
    op.add_column("query_requests", sa.Column("approver_email", sa.String(255), nullable=True))
    # The best record of who decided an old request: the decider's email as it is now.
    op.execute(
        "UPDATE query_requests SET approver_email ="
        " (SELECT email FROM users WHERE users.id = query_requests.approver_id)"
        " WHERE approver_id IS NOT NULL"
    )

    # refresh_tokens.id becomes a uuid, as in the seed. Nothing refers to these rows, so the
    # table is rebuilt in the seed's column order with the rows carried over, each given a new
    # id; a token that was revoked was revoked no later than now (when was never recorded).
    bind = op.get_bind()
    old = sa.table(
        "refresh_tokens",
        *_token_columns(),
        sa.column("is_revoked", sa.Boolean()),
    )
    now = bind.execute(sa.select(sa.func.current_timestamp())).scalar_one()
    rows = [
        {
            "id": uuid.uuid4(),
            "user_id": row.user_id,
            "token_hash": row.token_hash,
            "expires_at": row.expires_at,
            "revoked_at": now if row.is_revoked else None,
            "created_at": row.created_at,
        }
        for row in bind.execute(sa.select(old)).all()
    ]
    op.drop_table("refresh_tokens")
    new = _create_refresh_tokens(
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("token_hash", sa.String(length=255), nullable=False),
        sa.Column("expires_at", TZ, nullable=False),
        sa.Column("revoked_at", TZ, nullable=True),
        sa.Column("created_at", TZ, server_default=NOW, nullable=False),
    )
    if rows:
        op.bulk_insert(new, rows)

    # Two batches: in one, SQLite's copy of the table would lose a constraint on a column
    # renamed in the same batch.
    with op.batch_alter_table("access_token_blacklist") as batch_op:
        batch_op.drop_constraint("uq_access_token_blacklist_token_jti", type_="unique")
        batch_op.alter_column("token_jti", new_column_name="token_hash")
    with op.batch_alter_table("access_token_blacklist") as batch_op:
        batch_op.create_unique_constraint("uq_access_token_blacklist_token_hash", ["token_hash"])


def downgrade() -> None:
    with op.batch_alter_table("access_token_blacklist") as batch_op:
        batch_op.drop_constraint("uq_access_token_blacklist_token_hash", type_="unique")
        batch_op.alter_column("token_hash", new_column_name="token_jti")
    with op.batch_alter_table("access_token_blacklist") as batch_op:
        batch_op.create_unique_constraint("uq_access_token_blacklist_token_jti", ["token_jti"])

    # Back to integer ids (new ones: nothing refers to them) and the is_revoked flag.
    bind = op.get_bind()
    current = sa.table(
        "refresh_tokens",
        *_token_columns(),
        sa.column("revoked_at", TZ),
    )
    rows = [
        {
            "user_id": row.user_id,
            "token_hash": row.token_hash,
            "expires_at": row.expires_at,
            "is_revoked": row.revoked_at is not None,
            "created_at": row.created_at,
        }
        for row in bind.execute(sa.select(current)).all()
    ]
    op.drop_table("refresh_tokens")
    old = _create_refresh_tokens(
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("token_hash", sa.String(length=255), nullable=False),
        sa.Column("expires_at", TZ, nullable=False),
        sa.Column("is_revoked", sa.Boolean(), nullable=False),
        sa.Column("created_at", TZ, server_default=NOW, nullable=False),
    )
    if rows:
        op.bulk_insert(old, rows)

    # In place, as in upgrade (SQLite has dropped columns in place since 3.35).
    op.execute("ALTER TABLE query_requests DROP COLUMN approver_email")
    op.execute("ALTER TABLE query_requests RENAME COLUMN execution_completed_at TO executed_at")


def _create_refresh_tokens(*columns: sa.Column) -> sa.Table:
    """The refresh_tokens table with the given columns and its keys and indexes, as 0001 had."""
    table = op.create_table(
        "refresh_tokens",
        *columns,
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_refresh_tokens_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refresh_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_refresh_tokens_token_hash")),
    )
    op.create_index(op.f("ix_refresh_tokens_expires_at"), "refresh_tokens", ["expires_at"])
    op.create_index(op.f("ix_refresh_tokens_user_id"), "refresh_tokens", ["user_id"])
    return table
