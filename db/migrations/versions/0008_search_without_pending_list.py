"""Text search without GIN's pending list: the trigram indexes take each insert at once.

With fastupdate on (PostgreSQL's default), new entries wait in an unsorted pending list that
every search reads from end to end until a vacuum merges it. A few megabytes of it turned a
rare-word search from 1 ms into 10. The portal inserts a few requests a minute and searches far
more often, so each index is updated on insert and the list left by earlier inserts is merged
now.

Revision ID: 0008_search_without_pending_list
Revises: 0007_approval_policies
"""

from alembic import op

revision = "0008_search_without_pending_list"
down_revision = "0007_approval_policies"
branch_labels = None
depends_on = None

TRIGRAM_INDEXES = tuple(
    f"ix_query_requests_{column}_trgm"
    for column in ("query_content", "comments", "script_filename")
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for index in TRIGRAM_INDEXES:
        op.execute(f"ALTER INDEX {index} SET (fastupdate = off)")
        op.execute(f"SELECT gin_clean_pending_list('{index}'::regclass)")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for index in TRIGRAM_INDEXES:
        op.execute(f"ALTER INDEX {index} RESET (fastupdate)")
