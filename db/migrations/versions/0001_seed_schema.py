"""The seed's five tables: users, query_requests, refresh_tokens, access_token_blacklist,
user_token_invalidation, with CHECK constraints on the enumerated columns and the indexes the
request service queries by.

Revision ID: 0001_seed
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001_seed"
down_revision = None
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)
NOW = sa.func.current_timestamp()


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.String(length=255), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=True),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("pod_id", sa.String(length=100), nullable=True),
        sa.Column("slack_user_id", sa.String(length=50), nullable=True),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_at", TZ, server_default=NOW, nullable=False),
        sa.Column("updated_at", TZ, server_default=NOW, nullable=False),
        sa.CheckConstraint("role IN ('developer', 'manager', 'admin')", name=op.f("ck_users_role")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
        sa.UniqueConstraint("slack_user_id", name=op.f("uq_users_slack_user_id")),
    )
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_users_pod_id"), ["pod_id"], unique=False)

    op.create_table(
        "access_token_blacklist",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("token_jti", sa.String(length=255), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("expires_at", TZ, nullable=False),
        sa.Column("created_at", TZ, server_default=NOW, nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_access_token_blacklist_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_token_blacklist")),
        sa.UniqueConstraint("token_jti", name=op.f("uq_access_token_blacklist_token_jti")),
    )
    with op.batch_alter_table("access_token_blacklist", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_access_token_blacklist_expires_at"), ["expires_at"], unique=False
        )

    op.create_table(
        "query_requests",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("uuid", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("database_type", sa.String(length=20), nullable=False),
        sa.Column("instance_id", sa.String(length=100), nullable=False),
        sa.Column("instance_name", sa.String(length=255), nullable=False),
        sa.Column("database_name", sa.String(length=255), nullable=False),
        sa.Column("submission_type", sa.String(length=20), nullable=False),
        sa.Column("query_content", sa.Text(), nullable=True),
        sa.Column("script_filename", sa.String(length=255), nullable=True),
        sa.Column("script_content", sa.Text(), nullable=True),
        sa.Column("comments", sa.Text(), nullable=True),
        sa.Column("pod_id", sa.String(length=100), nullable=False),
        sa.Column("pod_name", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("approver_id", sa.Uuid(), nullable=True),
        sa.Column("approved_at", TZ, nullable=True),
        sa.Column("rejected_at", TZ, nullable=True),
        sa.Column("rejection_reason", sa.Text(), nullable=True),
        sa.Column("execution_started_at", TZ, nullable=True),
        sa.Column("executed_at", TZ, nullable=True),
        sa.Column("execution_result", sa.Text(), nullable=True),
        sa.Column("execution_error", sa.Text(), nullable=True),
        sa.Column("created_at", TZ, server_default=NOW, nullable=False),
        sa.Column("updated_at", TZ, server_default=NOW, nullable=False),
        sa.CheckConstraint(
            "(submission_type = 'query' AND query_content IS NOT NULL)"
            " OR (submission_type = 'script' AND script_content IS NOT NULL)",
            name=op.f("ck_query_requests_content_matches_type"),
        ),
        sa.CheckConstraint(
            "database_type IN ('postgresql', 'mongodb')",
            name=op.f("ck_query_requests_database_type"),
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'approved', 'rejected', 'executing', 'completed', 'failed')",
            name=op.f("ck_query_requests_status"),
        ),
        sa.CheckConstraint(
            "submission_type IN ('query', 'script')", name=op.f("ck_query_requests_submission_type")
        ),
        sa.ForeignKeyConstraint(
            ["approver_id"],
            ["users.id"],
            name=op.f("fk_query_requests_approver_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_query_requests_user_id_users"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_query_requests")),
        sa.UniqueConstraint("uuid", name=op.f("uq_query_requests_uuid")),
    )
    with op.batch_alter_table("query_requests", schema=None) as batch_op:
        batch_op.create_index("ix_query_requests_pod_id_status", ["pod_id", "status"], unique=False)
        batch_op.create_index(batch_op.f("ix_query_requests_status"), ["status"], unique=False)
        batch_op.create_index(batch_op.f("ix_query_requests_user_id"), ["user_id"], unique=False)

    op.create_table(
        "refresh_tokens",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("token_hash", sa.String(length=255), nullable=False),
        sa.Column("expires_at", TZ, nullable=False),
        sa.Column("is_revoked", sa.Boolean(), nullable=False),
        sa.Column("created_at", TZ, server_default=NOW, nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_refresh_tokens_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refresh_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_refresh_tokens_token_hash")),
    )
    with op.batch_alter_table("refresh_tokens", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_refresh_tokens_expires_at"), ["expires_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_refresh_tokens_user_id"), ["user_id"], unique=False)

    op.create_table(
        "user_token_invalidation",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("invalidated_at", TZ, server_default=NOW, nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_user_token_invalidation_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_user_token_invalidation")),
    )


def downgrade() -> None:
    op.drop_table("user_token_invalidation")
    op.drop_table("refresh_tokens")
    op.drop_table("query_requests")
    op.drop_table("access_token_blacklist")
    op.drop_table("users")
