"""Emails are unique regardless of letter case (the service already looks them up that way;
this makes two simultaneous adds of Ann@x.io and ann@x.io impossible too).

Revision ID: 0003_email_ci
Revises: 0002_slack_delivery
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_email_ci"
down_revision = "0002_slack_delivery"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("uq_users_email_lower", "users", [sa.text("lower(email)")], unique=True)


def downgrade() -> None:
    op.drop_index("uq_users_email_lower", table_name="users")
