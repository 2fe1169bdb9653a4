"""Near duplicates: a new memory almost the same as an older one of its space (cosine ≥ 0.95)."""

from __future__ import annotations

import dataclasses
import logging
import uuid

from engine.memory import Memory, SaveResult
from engine.stores import Stores
from storage.models import utcnow
from storage.vector_types import Vector, VectorHit

log = logging.getLogger("memorybot.near_duplicates")
NEAR_DUPLICATE_SIMILARITY = 0.95


async def nearest(stores: Stores, *, space_id: int, embedding: Vector) -> list[VectorHit]:
    """The two vectors of space `space_id` nearest to `embedding` (the new memory's own vector
    may be one of them). Best effort: a failure only costs the notice, never the save."""
    try:
        async with stores.reading() as repos:
            held = await repos.memories.count(space_id=space_id, now=utcnow())
        return await stores.vectors.query(
            space_id=space_id, embedding=embedding, k=2, space_count=held + 1
        )
    except Exception as error:  # the save itself reports real failures
        log.warning("near-duplicate lookup skipped: %s", type(error).__name__)
        return []


async def with_near_duplicate(
    stores: Stores,
    result: SaveResult,
    hits: list[VectorHit],
    *,
    threshold: float = NEAR_DUPLICATE_SIMILARITY,
) -> SaveResult:
    """`result` with the closest other live memory of its space whose similarity reaches
    `threshold` (unchanged when there is none)."""
    own = str(result.memory.id)
    close = [hit for hit in hits if hit.id != own and hit.similarity >= threshold]
    if not result.created or not close:
        return result
    best = max(close, key=lambda hit: hit.similarity)
    space_id = result.memory.space_id
    try:
        async with stores.reading() as repos:
            live = await repos.memories.live(
                ids=[uuid.UUID(best.id)], space_id=space_id, now=utcnow()
            )
    except Exception as error:
        log.warning("near-duplicate lookup skipped: %s", type(error).__name__)
        return result
    row = live.get(uuid.UUID(best.id))
    if row is None:  # an orphan vector, or forgotten meanwhile
        return result
    return dataclasses.replace(
        result, near_duplicate=Memory.from_row(row), similarity=min(1.0, best.similarity)
    )
