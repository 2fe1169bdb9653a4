"""The memory_tags table: one row per (memory, #tag), written in the memory's unit of work."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import MemoryRow, MemoryTagRow


class TagRepository:
    """Tag rows; deleting a memory deletes its tags (ON DELETE CASCADE)."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    def add(self, *, memory_id: uuid.UUID, space_id: int, tags: Sequence[str]) -> None:
        """Add the tags of a new memory (flushed with the next flush)."""
        self._session.add_all(
            MemoryTagRow(memory_id=memory_id, tag=tag, space_id=space_id) for tag in tags
        )

    async def replace(self, *, memory_id: uuid.UUID, space_id: int, tags: Sequence[str]) -> None:
        """Make `tags` the memory's tags (after an edit): the old rows go, the new are added."""
        await self._session.execute(
            delete(MemoryTagRow).where(MemoryTagRow.memory_id == memory_id)
        )
        self.add(memory_id=memory_id, space_id=space_id, tags=tags)

    async def of(self, memory_id: uuid.UUID) -> list[str]:
        """The tags of one memory, by name."""
        rows = await self._session.scalars(
            select(MemoryTagRow.tag)
            .where(MemoryTagRow.memory_id == memory_id)
            .order_by(MemoryTagRow.tag)
        )
        return list(rows)

    async def counts(self, *, space_id: int, now: datetime) -> list[tuple[str, int]]:
        """(tag, how many live memories carry it) in `space_id`, most used first, then by name."""
        used = func.count(MemoryTagRow.memory_id)
        rows = await self._session.execute(
            select(MemoryTagRow.tag, used)
            .join(MemoryRow, MemoryRow.id == MemoryTagRow.memory_id)
            .where(
                MemoryTagRow.space_id == space_id,
                MemoryRow.space_id == space_id,
                or_(MemoryRow.expires_at.is_(None), MemoryRow.expires_at > now),
            )
            .group_by(MemoryTagRow.tag)
            .order_by(used.desc(), MemoryTagRow.tag)
        )
        return [(str(tag), int(count)) for tag, count in rows]

    async def count_all(self) -> int:
        """How many tag rows there are (every space)."""
        return int(await self._session.scalar(select(func.count()).select_from(MemoryTagRow)) or 0)
