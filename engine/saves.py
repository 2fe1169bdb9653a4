"""Save paths: single saves coalesced into group commits, and bulk saves in pipelined chunks."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError

from engine.base import ServiceBase
from engine.errors import MemoryBotError, SourceTaken, SqlWriteFailed, UnknownUser
from engine.memory import Memory, NewMemory, SaveResult, normalise_text, vector_record
from storage import repositories as repo
from storage.batching import BatchQueue
from storage.models import MemoryRow, utcnow
from storage.vector_types import Vector

INSERT_ATTEMPTS = 3
SAVE_BATCH_MAX = 256
Pending = tuple[NewMemory, Vector]
Outcome = SaveResult | MemoryBotError


class SaveOps(ServiceBase):
    """`save` and `save_many`: every batch is one flush → vector upsert → commit."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._save_queue: BatchQueue[Pending, SaveResult] = BatchQueue(
            self._save_batch, max_batch=SAVE_BATCH_MAX, wait_s=0.0
        )

    async def save(
        self,
        *,
        user_id: int,
        text: str,
        chat_id: int | None = None,
        message_id: int | None = None,
        expires_at: datetime | None = None,
        kind: str = "note",
    ) -> SaveResult:
        """Remember `text` for `user_id`.

        Concurrent saves share one embedding batch and one transaction (group commit), so the
        write lock and the Chroma round trip are paid once per batch, not once per save.

        Args:
            user_id: a registered user's Telegram id.
            text: what to remember; stripped, at most `max_memory_chars` characters.
            chat_id: the chat of the message it came from (with `message_id`: idempotency key).
            message_id: the message it came from.
            expires_at: when it stops being recalled (None: never).
            kind: a free label ("note" by default).

        Returns:
            The memory and whether it was created now (False: that message was saved before).

        Raises:
            EmptyText, TextTooLong, UnknownUser, SourceTaken: nothing was written.
            WriteFailed: a storage step failed; both stores are as they were.
        """
        item = NewMemory(
            user_id=user_id,
            text=normalise_text(text, limit=self.settings.max_memory_chars),
            chat_id=chat_id,
            message_id=message_id,
            expires_at=expires_at,
            kind=kind,
        )
        vector = await self.embedder.embed(item.text)
        return await self._save_queue.submit((item, vector))

    async def save_many(
        self,
        *,
        user_id: int,
        texts: Sequence[str],
        expires_at: datetime | None = None,
        on_chunk: Callable[[int], None] | None = None,
    ) -> list[SaveResult]:
        """Remember many texts for one user: one transaction and one Chroma batch per chunk.

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
                cleaned = normalise_text(text, limit=self.settings.max_memory_chars)
            except MemoryBotError as error:
                error.add_note(f"item {index + 1} of {len(texts)}")
                raise
            items.append(NewMemory(user_id=user_id, text=cleaned, expires_at=expires_at))
        async with self.db.reads() as session:
            if not await repo.existing_user_ids(session, user_ids=[user_id]):
                raise UnknownUser(user_id)
        size = self.settings.bulk_chunk_size
        chunks = [items[i : i + size] for i in range(0, len(items), size)]
        saved: list[SaveResult] = []
        upcoming = self._embed_chunk(chunks[0]) if chunks else None
        try:
            for index, chunk in enumerate(chunks):
                assert upcoming is not None
                vectors = await upcoming
                upcoming = (
                    self._embed_chunk(chunks[index + 1]) if index + 1 < len(chunks) else None
                )
                outcomes = await self._insert(list(zip(chunk, vectors, strict=True)), "save_many")
                saved.extend(_unwrap(outcome) for outcome in outcomes)
                if on_chunk is not None:
                    on_chunk(len(saved))
        except MemoryBotError as error:
            error.add_note(f"{len(saved)} of {len(items)} were saved before the failure")
            raise
        finally:
            if upcoming is not None:
                upcoming.cancel()
        return saved

    def _embed_chunk(self, chunk: list[NewMemory]) -> asyncio.Task[list[Vector]]:
        return asyncio.create_task(self.embedder.embed_many([item.text for item in chunk]))

    async def _save_batch(self, batch: list[Pending]) -> Sequence[SaveResult | BaseException]:
        outcomes = await self._insert(batch, "save")
        return list(outcomes)

    async def _insert(self, batch: list[Pending], op: str) -> list[Outcome]:
        for attempt in range(INSERT_ATTEMPTS):
            try:
                return await self._insert_once(batch, op)
            except IntegrityError as error:  # a concurrent writer took a source key first
                if attempt == INSERT_ATTEMPTS - 1:
                    raise SqlWriteFailed(op, [], error) from error
        raise AssertionError("unreachable")

    async def _insert_once(self, batch: list[Pending], op: str) -> list[Outcome]:
        now = utcnow()
        async with self.unit_of_work(op) as uow:
            session = uow.session
            known = await repo.existing_user_ids(session, user_ids=[i.user_id for i, _ in batch])
            by_source = await repo.memories_by_source(
                session, keys=[i.source for i, _ in batch if i.source is not None]
            )
            outcomes: list[Outcome | MemoryRow] = []
            fresh: list[tuple[MemoryRow, Vector]] = []
            for item, vector in batch:
                existing = by_source.get(item.source) if item.source else None
                if item.user_id not in known:
                    outcomes.append(UnknownUser(item.user_id))
                elif existing is not None and existing.user_id != item.user_id:
                    outcomes.append(SourceTaken())
                elif existing is not None:
                    outcomes.append(SaveResult(Memory.from_row(existing), created=False))
                else:
                    row = _new_row(item, now)
                    session.add(row)
                    fresh.append((row, vector))
                    outcomes.append(row)
                    if item.source is not None:
                        by_source[item.source] = row
            uow.track([str(row.id) for row, _ in fresh])
            if fresh:
                await uow.flush()
                records = [vector_record(row, vector) for row, vector in fresh]
                await uow.upsert_vectors(records, replacing=False)
            await uow.commit()
        return [
            SaveResult(Memory.from_row(o), created=True) if isinstance(o, MemoryRow) else o
            for o in outcomes
        ]


def _new_row(item: NewMemory, now: datetime) -> MemoryRow:
    return MemoryRow(
        id=uuid.uuid4(),
        user_id=item.user_id,
        text=item.text,
        kind=item.kind,
        tags=list(item.tags),
        importance=0,
        chat_id=item.chat_id,
        message_id=item.message_id,
        created_at=now,
        updated_at=now,
        expires_at=item.expires_at,
    )


def _unwrap(outcome: Outcome) -> SaveResult:
    if isinstance(outcome, MemoryBotError):
        raise outcome
    return outcome
