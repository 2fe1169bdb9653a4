"""How many Chroma collections a vector generation is spread over, recorded beside it.

A space's vectors sit in shard `space_id % shards`, so a generation's shard count can never
change under it. It is recorded in SQL (the `vector_shards` kv entry: the generation and its
count) when the generation is made, and every process opens the index with the recorded
count, whatever CHROMA_SHARDS says now; `memorybot reindex` builds the next generation with
CHROMA_SHARDS. An index from before the record was built with CHROMA_SHARDS as it was then
set: `LEGACY_SHARDS` unless it is set.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

from engine.errors import MemoryBotError
from engine.settings import Settings
from storage.db import Database
from storage.repositories import Repositories
from storage.repositories.records import KeyValueRepository

if TYPE_CHECKING:
    from engine.stores import Stores

SHARDS_KEY = "vector_shards"
LEGACY_SHARDS = 16  # CHROMA_SHARDS's default until the count was recorded (now 4)

log = logging.getLogger(__name__)


def shards_record(generation: int, shards: int) -> str:
    """The kv value recording that `generation` is spread over `shards` collections."""
    return json.dumps({"generation": generation, "shards": shards}, sort_keys=True)


async def recorded_shards(kv: KeyValueRepository, generation: int) -> int | None:
    """The recorded shard count of `generation` (None: none recorded for it)."""
    raw = await kv.get(SHARDS_KEY)
    if raw is None:
        return None
    record = json.loads(raw)
    return int(record["shards"]) if int(record["generation"]) == generation else None


def unrecorded_shards(settings: Settings, *, has_memories: bool) -> int:
    """The count of a generation with no record: CHROMA_SHARDS for a new store; for one that
    holds memories (built before the record), CHROMA_SHARDS if it is set, else LEGACY_SHARDS."""
    if not has_memories or "chroma_shards" in settings.model_fields_set:
        return settings.chroma_shards
    return LEGACY_SHARDS


async def shards_to_open(db: Database, settings: Settings, generation: int) -> tuple[int, bool]:
    """The shard count to open `generation` with, and whether it is recorded."""
    async with db.reads() as session:
        repos = Repositories(session)
        recorded = await recorded_shards(repos.kv, generation)
        if recorded is not None:
            return recorded, True
        has_memories = await repos.memories.count_all() > 0
    return unrecorded_shards(settings, has_memories=has_memories), False


async def adopt_shards(stores: Stores, generation: int, shards: int) -> int:
    """Record `shards` as `generation`'s count; if another process starting now recorded
    another count first, spread the index as that one says (nothing is written yet).
    Returns the count the index is spread over."""
    try:
        async with stores.unit_of_work("record_shards") as uow:
            if await recorded_shards(uow.kv, generation) is None:
                await uow.kv.set(SHARDS_KEY, shards_record(generation, shards))
    except MemoryBotError:  # the other process's record went in first
        pass
    async with stores.reading() as repos:
        recorded = await recorded_shards(repos.kv, generation)
    if recorded is None:  # no longer this generation: it is the next start's to record
        return shards
    stores.vectors.set_shards(generation, recorded)
    return recorded


def warn_if_unapplied(settings: Settings, generation: int, shards: int) -> None:
    """Say in the log when CHROMA_SHARDS is not the count the index is spread over."""
    if shards != settings.chroma_shards:
        log.warning(
            "index_shards generation=%d shards=%d chroma_shards=%d: the index keeps its count"
            " until `memorybot reindex` rebuilds it with CHROMA_SHARDS",
            generation,
            shards,
            settings.chroma_shards,
        )
