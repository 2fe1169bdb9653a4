"""drop memories.importance (nothing set or read it)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("memories") as batch:
        batch.drop_column("importance")


def downgrade() -> None:
    with op.batch_alter_table("memories") as batch:
        batch.add_column(sa.Column("importance", sa.Integer(), nullable=False, server_default="0"))
