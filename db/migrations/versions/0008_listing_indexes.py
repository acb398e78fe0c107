"""Indexes that serve the request listings.

- The status and the pod-and-status indexes go on to (created_at, id): a listing filtered by
  status, or by pod and status, then reads its page newest first straight from the index
  instead of walking every request and dropping the ones that do not match.
- The trigram indexes take each insert at once (fastupdate off). With PostgreSQL's default,
  new entries wait in an unsorted pending list that every search reads from end to end until a
  vacuum merges it: a few megabytes of it turned a rare-word search from 1 ms into 10. The
  portal inserts a few requests a minute and searches far more often. The list left by earlier
  inserts is merged now.

Revision ID: 0008_listing_indexes
Revises: 0007_approval_policies
"""

from alembic import op

revision = "0008_listing_indexes"
down_revision = "0007_approval_policies"
branch_labels = None
depends_on = None

TRIGRAM_INDEXES = tuple(
    f"ix_query_requests_{column}_trgm"
    for column in ("query_content", "comments", "script_filename")
)


def upgrade() -> None:
    with op.batch_alter_table("query_requests") as batch_op:
        batch_op.drop_index("ix_query_requests_status")
        batch_op.drop_index("ix_query_requests_pod_id_status")
        batch_op.create_index(
            "ix_query_requests_status_created_at_id", ["status", "created_at", "id"]
        )
        batch_op.create_index(
            "ix_query_requests_pod_id_status_created_at_id",
            ["pod_id", "status", "created_at", "id"],
        )
    if op.get_bind().dialect.name != "postgresql":
        return
    for index in TRIGRAM_INDEXES:
        op.execute(f"ALTER INDEX {index} SET (fastupdate = off)")
        op.execute(f"SELECT gin_clean_pending_list('{index}'::regclass)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for index in TRIGRAM_INDEXES:
            op.execute(f"ALTER INDEX {index} RESET (fastupdate)")
    with op.batch_alter_table("query_requests") as batch_op:
        batch_op.drop_index("ix_query_requests_pod_id_status_created_at_id")
        batch_op.drop_index("ix_query_requests_status_created_at_id")
        batch_op.create_index("ix_query_requests_pod_id_status", ["pod_id", "status"])
        batch_op.create_index("ix_query_requests_status", ["status"])
