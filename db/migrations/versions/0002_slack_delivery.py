"""Beyond the seed: Slack message references (request cards, approval DMs), outcome delivery
state (retried until the requester has the result) and approval reminder state.

Revision ID: 0002_slack_delivery
Revises: 0001_seed
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_slack_delivery"
down_revision = "0001_seed"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)
NOW = sa.func.current_timestamp()


def upgrade() -> None:
    op.create_table(
        "approval_reminders",
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("reminded_at", TZ, nullable=True),
        sa.Column("escalated_at", TZ, nullable=True),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["query_requests.id"],
            name=op.f("fk_approval_reminders_request_id_query_requests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("request_id", name=op.f("pk_approval_reminders")),
    )

    op.create_table(
        "outcome_deliveries",
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("result_file", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("attempt_started_at", TZ, nullable=True),
        sa.Column("delivered_at", TZ, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", TZ, server_default=NOW, nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["query_requests.id"],
            name=op.f("fk_outcome_deliveries_request_id_query_requests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("request_id", name=op.f("pk_outcome_deliveries")),
    )

    op.create_table(
        "slack_messages",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("purpose", sa.String(length=20), nullable=False),
        sa.Column("slack_user_id", sa.String(length=50), nullable=True),
        sa.Column("channel_id", sa.String(length=50), nullable=False),
        sa.Column("message_ts", sa.String(length=50), nullable=False),
        sa.Column("created_at", TZ, server_default=NOW, nullable=False),
        sa.CheckConstraint(
            "purpose IN ('card', 'approval')", name=op.f("ck_slack_messages_purpose")
        ),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["query_requests.id"],
            name=op.f("fk_slack_messages_request_id_query_requests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_slack_messages")),
        sa.UniqueConstraint(
            "request_id",
            "purpose",
            "channel_id",
            name=op.f("uq_slack_messages_request_id_purpose_channel_id"),
        ),
    )
    with op.batch_alter_table("slack_messages", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_slack_messages_request_id"), ["request_id"], unique=False
        )


def downgrade() -> None:
    op.drop_table("slack_messages")
    op.drop_table("outcome_deliveries")
    op.drop_table("approval_reminders")
