"""the inbox replaces the processed-updates ledger

Updates are stored before they are confirmed to Telegram and processed from this table.
Ids already processed move over as finished rows, so a redelivery is still recognised.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "inbox",
        sa.Column("update_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("raw", sa.JSON(), nullable=True),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=True),
        sa.Column("owner", sa.String(length=64), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("notified", sa.Boolean(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("update_id", name=op.f("pk_inbox")),
    )
    with op.batch_alter_table("inbox") as batch:
        batch.create_index("ix_inbox_lane", ["status", "chat_id", "update_id"], unique=False)
        batch.create_index(batch.f("ix_inbox_finished_at"), ["finished_at"], unique=False)
    op.execute(
        "INSERT INTO inbox (update_id, chat_id, raw, status, attempts, notified, received_at,"
        " finished_at) SELECT update_id, 0, NULL, 'done', 1, false, processed_at, processed_at"
        " FROM processed_updates"
    )
    with op.batch_alter_table("processed_updates") as batch:
        batch.drop_index(batch.f("ix_processed_updates_processed_at"))
    op.drop_table("processed_updates")


def downgrade() -> None:
    op.create_table(
        "processed_updates",
        sa.Column("update_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("update_id", name=op.f("pk_processed_updates")),
    )
    with op.batch_alter_table("processed_updates") as batch:
        batch.create_index(
            batch.f("ix_processed_updates_processed_at"), ["processed_at"], unique=False
        )
    op.execute(
        "INSERT INTO processed_updates (update_id, processed_at)"
        " SELECT update_id, finished_at FROM inbox WHERE status <> 'pending'"
    )
    with op.batch_alter_table("inbox") as batch:
        batch.drop_index(batch.f("ix_inbox_finished_at"))
        batch.drop_index("ix_inbox_lane")
    op.drop_table("inbox")
