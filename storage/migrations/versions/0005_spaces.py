"""memory spaces: space_id/author_id/topic_id on memories, conversations per (chat, user)

Every existing memory belongs to its owner's personal space (a private chat's id is its
user's id), authored by that owner. Pending conversation states move from the users row to
their own table, keyed by the private chat they were started in. `role_granted_by` tells a
role given with /role from one that came from ADMIN_USER_IDS.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("memories") as batch:
        batch.add_column(sa.Column("space_id", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("author_id", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("topic_id", sa.BigInteger(), nullable=True))
    op.execute("UPDATE memories SET space_id = user_id, author_id = user_id")
    with op.batch_alter_table("memories") as batch:
        batch.alter_column("space_id", existing_type=sa.BigInteger(), nullable=False)
        batch.alter_column("author_id", existing_type=sa.BigInteger(), nullable=False)
        batch.drop_index("ix_memories_user_created")
        batch.drop_constraint("fk_memories_user_id_users", type_="foreignkey")
        batch.drop_column("user_id")
        batch.create_index("ix_memories_space_created", ["space_id", "created_at"])
    op.create_table(
        "conversations",
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("chat_id", "user_id", name=op.f("pk_conversations")),
    )
    op.execute(
        "INSERT INTO conversations (chat_id, user_id, state, payload, updated_at)"
        " SELECT id, id, state, COALESCE(state_payload, '{}'), state_updated_at FROM users"
        " WHERE state IS NOT NULL AND state_updated_at IS NOT NULL"
    )
    with op.batch_alter_table("users") as batch:
        batch.drop_column("state")
        batch.drop_column("state_payload")
        batch.drop_column("state_updated_at")
        batch.add_column(sa.Column("role_granted_by", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("role_granted_by")
        batch.add_column(sa.Column("state", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("state_payload", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("state_updated_at", sa.DateTime(timezone=True), nullable=True))
    op.drop_table("conversations")
    with op.batch_alter_table("memories") as batch:
        batch.add_column(sa.Column("user_id", sa.BigInteger(), nullable=True))
    op.execute("UPDATE memories SET user_id = space_id WHERE space_id > 0")
    op.execute("DELETE FROM memories WHERE user_id IS NULL")
    with op.batch_alter_table("memories") as batch:
        batch.alter_column("user_id", existing_type=sa.BigInteger(), nullable=False)
        batch.drop_index("ix_memories_space_created")
        batch.drop_column("topic_id")
        batch.drop_column("author_id")
        batch.drop_column("space_id")
        batch.create_index("ix_memories_user_created", ["user_id", "created_at"])
        batch.create_foreign_key(
            "fk_memories_user_id_users", "users", ["user_id"], ["id"], ondelete="CASCADE"
        )
