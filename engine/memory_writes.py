"""Memory writes: save, save_many, edit, forget, forget_all and expiry, each one unit of work."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime

from engine.errors import MemoryBotError, MemoryNotFound, UnknownUser
from engine.inserts import Pending, insert_batch, insert_chunks
from engine.memory import (
    Memory,
    NewMemory,
    SaveResult,
    is_expired,
    is_personal,
    normalise_text,
    vector_record,
    vector_ref,
)
from engine.near_duplicates import nearest, with_near_duplicate
from engine.stores import Stores
from engine.tags import extract_tags
from engine.uow import InSameUnit
from engine.vector_index import VectorRef
from storage.batching import BatchQueue
from storage.models import utcnow

SAVE_BATCH_MAX = 256


class MemoryWrites:
    """Every change to memories; SQL is the source of truth and Chroma follows it."""

    def __init__(self, stores: Stores) -> None:
        self._stores = stores
        self._limit = stores.settings.max_memory_chars
        self._save_queue: BatchQueue[Pending, SaveResult] = BatchQueue(
            self._save_batch, max_batch=SAVE_BATCH_MAX, wait_s=0.0, split=True
        )

    @property
    def save_batches(self) -> int:
        """How many group commits the save queue has run (many saves share one)."""
        return self._save_queue.batches

    async def aclose(self) -> None:
        """Finish the saves in hand and stop the group-commit queue."""
        await self._save_queue.aclose()

    def prefetch(self, text: str) -> None:
        """Start embedding `text` for a `save` about to come (after the caller's checks);
        invalid text is left for `save` to refuse."""
        try:
            self._stores.embedder.prefetch(normalise_text(text, limit=self._limit))
        except MemoryBotError:
            return

    async def save(
        self,
        *,
        space_id: int,
        text: str,
        author_id: int | None = None,
        topic_id: int | None = None,
        chat_id: int | None = None,
        message_id: int | None = None,
        expires_at: datetime | None = None,
        kind: str = "note",
        space_count: int | None = None,
        also: InSameUnit | None = None,
    ) -> SaveResult:
        """Remember `text` in space `space_id`.

        Concurrent saves share one embedding batch and one transaction (group commit), so the
        write lock and the Chroma round trip are paid once per batch, not once per save.

        Args:
            space_id: the chat it belongs to: a registered user's id (their personal space) or
                a group's id (the group's shared space).
            text: what to remember; stripped, at most `max_memory_chars` characters.
            author_id: who saves it (default: the owner of the personal space `space_id`).
            topic_id: the forum topic it was sent in.
            chat_id: the chat of the message it came from (with `message_id`: idempotency key).
            message_id: the message it came from.
            expires_at: when it stops being recalled (None: never).
            kind: a free label ("note" by default).
            space_count: how many live memories the space held just before (the caller's
                quota check counted them): spares the near-duplicate lookup its own COUNT.
            also: more work for the save's unit of work (e.g. clearing the prompt this text
                answers: a retry after a failure finds the prompt still there).

        Returns:
            The memory and whether it was created now (False: that message was saved before);
            for a new memory also an older one of the space nearly the same (cosine ≥ 0.95),
            if there is one (the bulk path `save_many` never looks).

        Raises:
            EmptyText, TextTooLong, UnknownUser, SourceTaken: nothing was written.
            WriteFailed: a storage step failed; both stores are as they were.
        """
        item = NewMemory(
            space_id=space_id,
            author_id=space_id if author_id is None else author_id,
            text=normalise_text(text, limit=self._limit),
            topic_id=topic_id,
            chat_id=chat_id,
            message_id=message_id,
            expires_at=expires_at,
            kind=kind,
        )
        vector = await self._stores.embedder.embed(item.text)
        result = await self._save_queue.submit((item, vector, also))
        if not result.created:
            return result
        # After the commit, not beside it: a query racing the upsert could cache a stale count.
        hits = await nearest(self._stores, space_id=space_id, embedding=vector, held=space_count)
        return await with_near_duplicate(self._stores, result, hits)

    async def _save_batch(self, batch: list[Pending]) -> Sequence[SaveResult | BaseException]:
        return list(await insert_batch(self._stores, batch, "save"))

    async def save_many(
        self,
        *,
        space_id: int,
        texts: Sequence[str],
        author_id: int | None = None,
        expires_at: datetime | None = None,
        on_chunk: Callable[[int], None] | None = None,
    ) -> list[SaveResult]:
        """Remember many texts in one space: one transaction and one Chroma batch per chunk.

        The next chunk is embedded while the current one is written. Input is validated in
        full first, so a bad item means nothing is written. Chunks already committed stay
        when a later chunk fails (the error says how many were saved).

        Raises:
            EmptyText, TextTooLong (with a note naming the item), UnknownUser.
            WriteFailed: for the first chunk that failed; earlier chunks are saved.
        """
        items: list[NewMemory] = []
        for index, text in enumerate(texts):
            try:
                cleaned = normalise_text(text, limit=self._limit)
            except MemoryBotError as error:
                error.add_note(f"item {index + 1} of {len(texts)}")
                raise
            author = space_id if author_id is None else author_id
            items.append(
                NewMemory(space_id=space_id, author_id=author, text=cleaned, expires_at=expires_at)
            )
        if is_personal(space_id):
            async with self._stores.reading() as repos:
                if not await repos.users.existing_ids([space_id]):
                    raise UnknownUser(space_id)
        return await insert_chunks(self._stores, items, on_chunk=on_chunk)

    async def edit(self, *, space_id: int, memory_id: uuid.UUID, text: str) -> Memory:
        """Replace a memory's text and its vector (re-embedded).

        If the commit fails, the old vector is put back (compensation).

        Raises:
            EmptyText, TextTooLong, MemoryNotFound: nothing was written.
            WriteFailed: a storage step failed; the old text and vector remain.
        """
        cleaned = normalise_text(text, limit=self._limit)
        vector = await self._stores.embedder.embed(cleaned)
        async with self._stores.unit_of_work("edit") as uow:
            row = await uow.memories.get(memory_id=memory_id, space_id=space_id, now=utcnow())
            if row is None:
                raise MemoryNotFound(memory_id.hex[:8])
            if row.text != cleaned:
                row.text = cleaned
                row.tags = list(extract_tags(cleaned))
                row.updated_at = utcnow()
                await uow.flush()
                await uow.tags.replace(memory_id=row.id, space_id=space_id, tags=row.tags)
                await uow.flush()
                await uow.upsert_vectors([vector_record(row, vector)], replacing=True)
        return Memory.from_row(row)

    async def edit_by_source(
        self, *, author_id: int, chat_id: int, message_id: int, text: str
    ) -> Memory | None:
        """Apply an edited chat message to the memory made from it (None if there is none).

        Only the message's author changes it: an edit by anyone else is ignored (None).
        """
        async with self._stores.reading() as repos:
            found = await repos.memories.by_source([(chat_id, message_id)])
        current = found.get((chat_id, message_id))
        if current is None or current.author_id != author_id or is_expired(current, utcnow()):
            return None  # an edit of a message that is no (live) memory: not our business
        cleaned = normalise_text(text, limit=self._limit)
        if current.text == cleaned:
            return Memory.from_row(current)
        return await self.edit(space_id=current.space_id, memory_id=current.id, text=cleaned)

    async def forget(self, *, space_id: int, memory_id: uuid.UUID) -> Memory:
        """Delete one memory of space `space_id` from both stores.

        Raises:
            MemoryNotFound: no such memory in this space; nothing was written.
            WriteFailed: a storage step failed; the memory is still there in both stores.
        """
        async with self._stores.unit_of_work("forget") as uow:
            row = await uow.memories.get(memory_id=memory_id, space_id=space_id, now=utcnow())
            if row is None:
                raise MemoryNotFound(memory_id.hex[:8])
            memory = Memory.from_row(row)
            await uow.memories.remove(row)
            await uow.flush()
            await uow.delete_vectors([vector_ref(row)])
        return memory

    async def forget_all(self, *, space_id: int, also: InSameUnit | None = None) -> int:
        """Delete every memory of one space (and only its) from both stores, all or nothing,
        with `also` (e.g. the chat's traces and the confirmation that asked for this) in the
        same unit of work: a retry after a failure finds the confirmation again.

        Vectors of this space that have no row (orphans) are deleted too, once older than the
        sweep's grace period: a younger one may belong to a save still in flight, which
        commits after this and keeps its vector.

        Returns:
            How many memories were deleted.
        """
        settled = time.time() - self._stores.settings.sweep_grace_s
        scanned = await self._stores.vectors.scan(space_id)
        stray = [v.id for v in scanned if v.space_id == space_id and v.written_at <= settled]
        async with self._stores.unit_of_work("forget_all") as uow:
            ids = await uow.memories.ids_in_space(space_id)
            refs = [VectorRef(i, space_id) for i in sorted({*map(str, ids), *stray})]
            await uow.memories.delete(ids)
            if also is not None:
                await also(uow)
            await uow.flush()
            await uow.delete_vectors(refs)
        return len(ids)

    async def expire_due(self, *, limit: int = 500) -> list[Memory]:
        """Delete up to `limit` memories past their expiry from both stores, in one unit of work.

        Returns:
            The memories deleted (empty when nothing is due).
        """
        async with self._stores.unit_of_work("expire") as uow:
            rows = await uow.memories.due(now=utcnow(), limit=limit)
            if rows:
                await uow.memories.delete([row.id for row in rows])
                await uow.flush()
                await uow.delete_vectors([vector_ref(row) for row in rows])
        return [Memory.from_row(row) for row in rows]
