"""Approval policies: the approval steps of each request (two-step approval, approvals given by
a policy), and per request its risk, estimate, approvals required, "run after" time, the
earliest start a window allows, when it expires, and the request it re-runs.

Revision ID: 0007_approval_policies
Revises: 0006_web_sign_in
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_approval_policies"
down_revision = "0006_web_sign_in"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "approval_steps",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("approver_id", sa.Uuid(), nullable=True),
        sa.Column("approver_email", sa.String(length=255), nullable=False),
        sa.Column("approved_at", TZ, nullable=False),
        sa.Column("policy_name", sa.String(length=100), nullable=True),
        sa.CheckConstraint("step IN (1, 2)", name=op.f("ck_approval_steps_step")),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["query_requests.id"],
            name=op.f("fk_approval_steps_request_id_query_requests"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["approver_id"],
            ["users.id"],
            name=op.f("fk_approval_steps_approver_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_approval_steps")),
        sa.UniqueConstraint("request_id", "step", name=op.f("uq_approval_steps_request_id_step")),
        sa.UniqueConstraint(
            "request_id", "approver_id", name=op.f("uq_approval_steps_request_id_approver_id")
        ),
    )

    op.create_table(
        "request_policies",
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("risk_level", sa.String(length=20), nullable=True),
        sa.Column("risk_reasons", sa.Text(), nullable=True),
        sa.Column("estimate_summary", sa.Text(), nullable=True),
        sa.Column("estimated_rows", sa.BigInteger(), nullable=True),
        sa.Column("approvals_required", sa.Integer(), nullable=False),
        sa.Column("second_approval_policy", sa.String(length=100), nullable=True),
        sa.Column("second_approval_group", sa.String(length=100), nullable=True),
        sa.Column("run_after", TZ, nullable=True),
        sa.Column("not_before", TZ, nullable=True),
        sa.Column("expires_at", TZ, nullable=True),
        sa.Column("rerun_of", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "risk_level IN ('low', 'medium', 'high', 'critical')",
            name=op.f("ck_request_policies_risk_level"),
        ),
        sa.CheckConstraint(
            "approvals_required IN (1, 2)", name=op.f("ck_request_policies_approvals_required")
        ),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["query_requests.id"],
            name=op.f("fk_request_policies_request_id_query_requests"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["rerun_of"],
            ["query_requests.id"],
            name=op.f("fk_request_policies_rerun_of_query_requests"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("request_id", name=op.f("pk_request_policies")),
    )
    for column in ("not_before", "expires_at", "rerun_of"):
        op.create_index(
            op.f(f"ix_request_policies_{column}"), "request_policies", [column], unique=False
        )


def downgrade() -> None:
    op.drop_table("request_policies")
    op.drop_table("approval_steps")
