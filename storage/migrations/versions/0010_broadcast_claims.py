"""broadcast delivery claims

A delivery is claimed before its send: status `sending`, the claiming worker in `owner` and
the claim's end in `lease_until` (a lapsed claim is taken over). Only the owner marks it.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("broadcast_deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("owner", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_broadcast_deliveries_owner", ["owner"], unique=False)


def downgrade() -> None:
    # before claims, a delivery not yet sent is pending: claims in hand go back to the queue
    op.execute("UPDATE broadcast_deliveries SET status = 'pending' WHERE status = 'sending'")
    with op.batch_alter_table("broadcast_deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_broadcast_deliveries_owner")
        batch_op.drop_column("lease_until")
        batch_op.drop_column("owner")
