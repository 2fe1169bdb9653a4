"""Edit and forget paths, each one unit of work with a compensating vector restore."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from engine.base import ServiceBase
from engine.errors import MemoryNotFound
from engine.memory import Memory, normalise_text, vector_record, vector_ref
from engine.uow import UnitOfWork
from storage import repositories as repo
from storage.models import MemoryRow, utcnow
from storage.vector_types import Vector, VectorRef


class ChangeOps(ServiceBase):
    """`edit`, `edit_by_source`, `forget` and `forget_all`."""

    async def edit(self, *, user_id: int, memory_id: uuid.UUID, text: str) -> Memory:
        """Replace a memory's text and its vector (re-embedded).

        If the commit fails, the old vector is put back (compensation).

        Raises:
            EmptyText, TextTooLong, MemoryNotFound: nothing was written.
            WriteFailed: a storage step failed; the old text and vector remain.
        """
        cleaned = normalise_text(text, limit=self.settings.max_memory_chars)
        vector = await self.embedder.embed(cleaned)
        async with self.unit_of_work("edit") as uow:
            row = await repo.get_memory(
                uow.session, memory_id=memory_id, user_id=user_id, now=utcnow()
            )
            if row is None:
                raise MemoryNotFound(memory_id.hex[:8])
            return await self._rewrite(uow, row, cleaned, vector)

    async def edit_by_source(
        self, *, user_id: int, chat_id: int, message_id: int, text: str
    ) -> Memory | None:
        """Apply an edited chat message to the memory made from it (None if there is none)."""
        async with self.db.reads() as session:
            found = await repo.memories_by_source(session, keys=[(chat_id, message_id)])
        current = found.get((chat_id, message_id))
        if current is None or current.user_id != user_id:
            return None  # an edit of a message that is no memory: not our business
        cleaned = normalise_text(text, limit=self.settings.max_memory_chars)
        if current.text == cleaned:
            return Memory.from_row(current)
        return await self.edit(user_id=user_id, memory_id=current.id, text=cleaned)

    async def _rewrite(self, uow: UnitOfWork, row: MemoryRow, text: str, vector: Vector) -> Memory:
        if row.text == text:
            await uow.commit()
            return Memory.from_row(row)
        row.text = text
        row.updated_at = utcnow()
        await uow.flush()
        await uow.upsert_vectors([vector_record(row, vector)], replacing=True)
        await uow.commit()
        return Memory.from_row(row)

    async def forget(self, *, user_id: int, memory_id: uuid.UUID) -> Memory:
        """Delete one memory of `user_id` from both stores.

        Raises:
            MemoryNotFound: no such memory of this user; nothing was written.
            WriteFailed: a storage step failed; the memory is still there in both stores.
        """
        async with self.unit_of_work("forget") as uow:
            row = await repo.get_memory(
                uow.session, memory_id=memory_id, user_id=user_id, now=utcnow()
            )
            if row is None:
                raise MemoryNotFound(memory_id.hex[:8])
            memory = Memory.from_row(row)
            await uow.session.delete(row)
            await uow.flush()
            await uow.delete_vectors([vector_ref(row)])
            await uow.commit()
        return memory

    async def forget_all(self, *, user_id: int) -> int:
        """Delete every memory of `user_id` (and only theirs) from both stores, all or nothing.

        Vectors of this user that have no row (orphans) are deleted too.

        Returns:
            How many memories were deleted.
        """
        async with self.unit_of_work("forget_all") as uow:
            ids = await repo.memory_ids_of_user(uow.session, user_id=user_id)
            stray = [v.id for v in await self.vectors.scan(user_id) if v.user_id == user_id]
            refs = [VectorRef(i, user_id) for i in sorted({*map(str, ids), *stray})]
            await repo.delete_memories(uow.session, ids=ids)
            await uow.flush()
            await uow.delete_vectors(refs)
            await uow.commit()
        return len(ids)

    async def expire_due(self, *, limit: int = 500) -> list[Memory]:
        """Delete up to `limit` memories past their expiry from both stores, in one unit of work.

        Returns:
            The memories deleted (empty when nothing is due).
        """
        async with self.unit_of_work("expire") as uow:
            rows = list(
                await uow.session.scalars(
                    select(MemoryRow)
                    .where(MemoryRow.expires_at <= utcnow())
                    .order_by(MemoryRow.expires_at)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
            )
            if rows:
                await repo.delete_memories(uow.session, ids=[row.id for row in rows])
                await uow.flush()
                await uow.delete_vectors([vector_ref(row) for row in rows])
            await uow.commit()
        return [Memory.from_row(row) for row in rows]
