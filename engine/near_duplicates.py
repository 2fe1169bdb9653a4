"""Near duplicates: a new memory almost the same as an older one of its space.

Almost the same: cosine ≥ 0.95, or the same words in another case or punctuation ("my passport
is in the blue drawer" / "My passport is in the blue drawer!"), whose cosine is close to the
line and falls either side of it with the model's precision (fp32 0.950, int8 0.946).
"""

from __future__ import annotations

import dataclasses
import logging
import re
import uuid

from engine.memory import Memory, SaveResult
from engine.stores import Stores
from storage.models import utcnow
from storage.vector_types import Vector, VectorHit

log = logging.getLogger("memorybot.near_duplicates")
NEAR_DUPLICATE_SIMILARITY = 0.95
SAME_WORDS_SIMILARITY = 0.85  # the same words are looked at from here up
_WORD = re.compile(r"\w+")


def same_words(a: str, b: str) -> bool:
    """True when `a` and `b` differ at most in case, spacing and punctuation."""
    return _WORD.findall(a.casefold()) == _WORD.findall(b.casefold())


async def nearest(
    stores: Stores, *, space_id: int, embedding: Vector, held: int | None = None
) -> list[VectorHit]:
    """The two vectors of space `space_id` nearest to `embedding` (the new memory's own vector
    may be one of them). `held`: the space's live memories before the save, if the caller
    counted them (else counted here: the vector query plans by it). Best effort: a failure
    only costs the notice, never the save."""
    try:
        if held is None:
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
    `threshold` or that has the same words (unchanged when there is none)."""
    own = str(result.memory.id)
    close = [hit for hit in hits if hit.id != own and hit.similarity >= SAME_WORDS_SIMILARITY]
    if not result.created or not close:
        return result
    try:
        async with stores.reading() as repos:
            live = await repos.memories.live(
                ids=[uuid.UUID(hit.id) for hit in close],
                space_id=result.memory.space_id,
                now=utcnow(),
            )
    except Exception as error:
        log.warning("near-duplicate lookup skipped: %s", type(error).__name__)
        return result
    text = result.memory.text
    found = [  # a hit without a live row: an orphan vector, or forgotten meanwhile
        (hit, row)
        for hit in close
        if (row := live.get(uuid.UUID(hit.id))) is not None
        and (hit.similarity >= threshold or same_words(row.text, text))
    ]
    if not found:
        return result
    hit, row = max(found, key=lambda pair: pair[0].similarity)
    return dataclasses.replace(
        result, near_duplicate=Memory.from_row(row), similarity=min(1.0, hit.similarity)
    )
