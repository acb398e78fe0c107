"""Outcome deliveries remember the reply they posted, so that a retry after a failed file upload
posts only the file, not the reply a second time.

Revision ID: 0004_outcome_reply
Revises: 0003_email_ci
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_outcome_reply"
down_revision = "0003_email_ci"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("outcome_deliveries", sa.Column("reply_ts", sa.String(50), nullable=True))


def downgrade() -> None:
    # SQLite before 3.35 cannot drop a column in place; batch mode copies the table instead.
    with op.batch_alter_table("outcome_deliveries") as batch_op:
        batch_op.drop_column("reply_ts")
