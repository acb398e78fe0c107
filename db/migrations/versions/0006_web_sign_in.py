"""Web sign-in: one-time links (sign in, set a password), failed sign-ins per email and per
address, an index for paging listings newest first, and on PostgreSQL a trigram index for
searching the query, comments and script filename (pg_trgm).

Revision ID: 0006_web_sign_in
Revises: 0005_seed_columns
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_web_sign_in"
down_revision = "0005_seed_columns"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)
NOW = sa.func.current_timestamp()
SEARCHED_COLUMNS = ("query_content", "comments", "script_filename")


def upgrade() -> None:
    op.create_table(
        "sign_in_links",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("purpose", sa.String(length=20), nullable=False),
        sa.Column("expires_at", TZ, nullable=False),
        sa.Column("used_at", TZ, nullable=True),
        sa.Column("created_at", TZ, server_default=NOW, nullable=False),
        sa.CheckConstraint(
            "purpose IN ('sign_in', 'set_password')", name=op.f("ck_sign_in_links_purpose")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_sign_in_links_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sign_in_links")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_sign_in_links_token_hash")),
    )
    op.create_index(op.f("ix_sign_in_links_user_id"), "sign_in_links", ["user_id"])
    op.create_index(op.f("ix_sign_in_links_expires_at"), "sign_in_links", ["expires_at"])
    op.create_table(
        "login_throttle",
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure_at", TZ, nullable=False),
        sa.Column("locked_until", TZ, nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_login_throttle")),
    )
    op.create_index(op.f("ix_query_requests_created_at_id"), "query_requests", ["created_at", "id"])
    if op.get_bind().dialect.name == "postgresql":
        # pg_trgm is a trusted extension: the database's owner may create it.
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        for column in SEARCHED_COLUMNS:
            op.create_index(
                f"ix_query_requests_{column}_trgm",
                "query_requests",
                [column],
                postgresql_using="gin",
                postgresql_ops={column: "gin_trgm_ops"},
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for column in SEARCHED_COLUMNS:
            op.drop_index(f"ix_query_requests_{column}_trgm", table_name="query_requests")
    op.drop_index(op.f("ix_query_requests_created_at_id"), table_name="query_requests")
    op.drop_table("login_throttle")
    op.drop_index(op.f("ix_sign_in_links_expires_at"), table_name="sign_in_links")
    op.drop_index(op.f("ix_sign_in_links_user_id"), table_name="sign_in_links")
    op.drop_table("sign_in_links")
