"""Inserting new memories: each batch is one flush → one vector upsert → one commit."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import datetime

from engine.errors import AlreadyExists, MemoryBotError, SourceTaken, SqlWriteFailed, UnknownUser
from engine.memory import Memory, NewMemory, SaveResult, is_personal, vector_record
from engine.stores import Stores
from engine.tags import extract_tags, merge_tags
from engine.uow import InSameUnit
from engine.vector_index import Vector
from storage.models import MemoryRow, utcnow

INSERT_ATTEMPTS = 3
Pending = tuple[NewMemory, Vector, InSameUnit | None]  # with more work for its unit of work
Outcome = SaveResult | MemoryBotError


async def insert_batch(stores: Stores, batch: list[Pending], op: str) -> list[Outcome]:
    """Insert `batch` in one unit of work; one outcome per item, in order.

    A message saved before (same chat and message id) is returned as it is, not saved again.
    Each item's extra step (e.g. clearing the prompt it answers) runs in the same unit of work,
    whatever the item's outcome.
    The first attempt does not look for earlier saves of the batch's messages: the unique
    index on (chat, message) refuses a second one at the flush, before any vector is written,
    and the batch is tried again with that lookup (a redelivered message, or a concurrent
    writer that took it first).
    """
    for attempt in range(INSERT_ATTEMPTS):
        try:
            return await _insert_once(stores, batch, op, look_up=attempt > 0)
        except AlreadyExists as error:
            if attempt == INSERT_ATTEMPTS - 1:
                raise SqlWriteFailed(op, [], error) from error
    raise AssertionError("unreachable")


async def _insert_once(
    stores: Stores, batch: list[Pending], op: str, *, look_up: bool
) -> list[Outcome]:
    now = utcnow()
    outcomes: list[Outcome | MemoryRow] = []
    by_source: dict[tuple[int, int], MemoryRow] = {}
    if look_up:
        async with stores.reading() as repos:  # read before taking the write lock
            by_source = await repos.memories.by_source(
                [item.source for item, _, _ in batch if item.source is not None]
            )  # a message saved meanwhile by another writer fails the insert: tried again
    async with stores.unit_of_work(op) as uow:
        for _, _, also in batch:
            if also is not None:
                await also(uow)
        personal = [item.space_id for item, _, _ in batch if is_personal(item.space_id)]
        # After every `also`: a registration made there counts.
        known = await uow.users.existing_ids(personal) if personal else set()
        fresh: list[tuple[MemoryRow, Vector]] = []
        for item, vector, _ in batch:
            existing = by_source.get(item.source) if item.source else None
            if is_personal(item.space_id) and item.space_id not in known:
                outcomes.append(UnknownUser(item.space_id))
            elif existing is not None and existing.space_id != item.space_id:
                outcomes.append(SourceTaken())
            elif existing is not None:
                outcomes.append(SaveResult(Memory.from_row(existing), created=False))
            else:
                row = new_row(item, now)
                uow.memories.add(row)
                fresh.append((row, vector))
                outcomes.append(row)
                if item.source is not None:
                    by_source[item.source] = row
        uow.track([str(row.id) for row, _ in fresh])
        if fresh:
            await uow.flush()
            for row, _ in fresh:  # after the memory rows exist: their tags refer to them
                uow.tags.add(memory_id=row.id, space_id=row.space_id, tags=row.tags)
            await uow.flush()
            await uow.upsert_vectors(
                [vector_record(row, vector) for row, vector in fresh], replacing=False
            )
    return [
        SaveResult(Memory.from_row(o), created=True) if isinstance(o, MemoryRow) else o
        for o in outcomes
    ]


async def insert_chunks(
    stores: Stores, items: list[NewMemory], *, on_chunk: Callable[[int], None] | None
) -> list[SaveResult]:
    """Insert validated `items` in chunks, embedding the next chunk while one is written.

    Raises:
        The first chunk's failure, noting how many were saved before it (those stay).
    """
    size = stores.settings.bulk_chunk_size
    chunks = [items[i : i + size] for i in range(0, len(items), size)]
    saved: list[SaveResult] = []

    def embed(chunk: list[NewMemory]) -> asyncio.Task[list[Vector]]:
        return asyncio.create_task(stores.embedder.embed_many([item.text for item in chunk]))

    upcoming = embed(chunks[0]) if chunks else None
    try:
        for index, chunk in enumerate(chunks):
            assert upcoming is not None
            vectors = await upcoming
            upcoming = embed(chunks[index + 1]) if index + 1 < len(chunks) else None
            batch: list[Pending] = [(i, v, None) for i, v in zip(chunk, vectors, strict=True)]
            saved.extend(
                _unwrap(outcome) for outcome in await insert_batch(stores, batch, "save_many")
            )
            if on_chunk is not None:
                on_chunk(len(saved))
    except MemoryBotError as error:
        error.add_note(f"{len(saved)} of {len(items)} were saved before the failure")
        raise
    finally:
        if upcoming is not None:
            upcoming.cancel()
    return saved


def _unwrap(outcome: Outcome) -> SaveResult:
    if isinstance(outcome, MemoryBotError):
        raise outcome
    return outcome


def new_row(item: NewMemory, now: datetime) -> MemoryRow:
    """The row for a validated new memory."""
    return MemoryRow(
        id=uuid.uuid4(),
        space_id=item.space_id,
        author_id=item.author_id,
        topic_id=item.topic_id,
        text=item.text,
        kind=item.kind,
        tags=list(merge_tags(item.tags, extract_tags(item.text))),
        chat_id=item.chat_id,
        message_id=item.message_id,
        created_at=item.created_at or now,
        updated_at=now,
        expires_at=item.expires_at,
    )
