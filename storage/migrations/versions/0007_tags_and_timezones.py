"""memory tags in their own table, and each user's time zone

`memory_tags` holds one row per (memory, tag) so /list #tag and /tags are index lookups. Every
existing memory gets the tags already in `memories.tags` plus the hashtags of its text (the
same rules a new save uses), in both places. `users.timezone` is an IANA name (NULL: UTC,
not chosen yet).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

from engine.tags import extract_tags, merge_tags  # a new save's rules, for old memories too

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("timezone", sa.String(length=64), nullable=True))
    op.create_table(
        "memory_tags",
        sa.Column("memory_id", sa.Uuid(), nullable=False),
        sa.Column("tag", sa.String(length=64), nullable=False),
        sa.Column("space_id", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["memory_id"],
            ["memories.id"],
            name=op.f("fk_memory_tags_memory_id_memories"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("memory_id", "tag", name=op.f("pk_memory_tags")),
    )
    op.create_index("ix_memory_tags_space_tag", "memory_tags", ["space_id", "tag"])
    _copy_tags()


def _copy_tags() -> None:
    """Give every memory its tags: those in memories.tags (JSON) and its text's hashtags."""
    bind = op.get_bind()
    memories = sa.table(
        "memories",
        sa.column("id", sa.Uuid()),
        sa.column("space_id", sa.BigInteger()),
        sa.column("text", sa.Text()),
        sa.column("tags", sa.JSON()),
    )
    tags = sa.table(
        "memory_tags",
        sa.column("memory_id", sa.Uuid()),
        sa.column("tag", sa.String()),
        sa.column("space_id", sa.BigInteger()),
    )
    rows: list[dict[str, object]] = []
    changed: list[dict[str, object]] = []
    for memory_id, space_id, text, raw in bind.execute(sa.select(memories)).all():
        stored = json.loads(raw) if isinstance(raw, str) else raw
        kept = list(merge_tags((str(t) for t in stored or ()), extract_tags(text or "")))
        rows.extend({"memory_id": memory_id, "tag": tag, "space_id": space_id} for tag in kept)
        if kept != list(stored or ()):
            changed.append({"key": memory_id, "new_tags": kept})
    if rows:
        bind.execute(tags.insert(), rows)
    if changed:
        update = (
            memories.update()
            .where(memories.c.id == sa.bindparam("key"))
            .values(tags=sa.bindparam("new_tags", type_=sa.JSON()))
        )
        bind.execute(update, changed)


def downgrade() -> None:
    op.drop_index("ix_memory_tags_space_tag", table_name="memory_tags")
    op.drop_table("memory_tags")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("timezone")
