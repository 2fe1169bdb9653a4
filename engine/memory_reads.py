"""Memory reads: get, resolve a short id, a page of the list, export and hybrid recall."""

from __future__ import annotations

import asyncio
import re
import uuid
from dataclasses import dataclass

from engine.errors import AmbiguousId, BadId, MemoryNotFound
from engine.memory import Memory, normalise_text
from engine.ranking import fuse, keywords
from engine.stores import Stores
from storage.models import utcnow


@dataclass(frozen=True)
class Page:
    items: list[Memory]
    total: int
    offset: int
    limit: int

    @property
    def has_more(self) -> bool:
        return self.offset + len(self.items) < self.total


@dataclass(frozen=True)
class RecallHit:
    memory: Memory
    score: float  # reciprocal-rank fusion score: only the order means something
    similarity: float | None  # cosine similarity when the semantic search found it
    keyword: bool  # True when the keyword search found it


class MemoryReads:
    """What users read; expired memories and memories of other spaces are never returned."""

    def __init__(self, stores: Stores) -> None:
        self._stores = stores

    async def get(self, *, space_id: int, memory_id: uuid.UUID) -> Memory:
        """One live memory of space `space_id`; raises MemoryNotFound otherwise."""
        async with self._stores.reading() as repos:
            row = await repos.memories.get(memory_id=memory_id, space_id=space_id, now=utcnow())
        if row is None:
            raise MemoryNotFound(memory_id.hex[:8])
        return Memory.from_row(row)

    async def resolve(self, *, space_id: int, ref: str) -> Memory:
        """The live memory of space `space_id` named by a short id (4+ hex digits) or a full UUID.

        Raises:
            BadId, MemoryNotFound, AmbiguousId.
        """
        cleaned = ref.strip().lower().replace("-", "")
        if not re.fullmatch(r"[0-9a-f]{4,32}", cleaned):
            raise BadId(ref[:40])
        async with self._stores.reading() as repos:
            rows = await repos.memories.by_prefix(space_id=space_id, prefix=cleaned, now=utcnow())
        if not rows:
            raise MemoryNotFound(cleaned[:8])
        if len(rows) > 1:
            raise AmbiguousId(cleaned)
        return Memory.from_row(rows[0])

    async def page(self, *, space_id: int, offset: int = 0, limit: int = 10) -> Page:
        """A page of live memories, newest first."""
        now = utcnow()
        async with self._stores.reading() as repos:
            rows = await repos.memories.page(
                space_id=space_id, now=now, limit=limit, offset=offset
            )
            total = await repos.memories.count(space_id=space_id, now=now)
        return Page([Memory.from_row(r) for r in rows], total, offset, limit)

    async def export(self, *, space_id: int) -> list[Memory]:
        """Every live memory of space `space_id`, oldest first (for /export)."""
        page = await self.page(space_id=space_id, limit=1_000_000)
        return page.items[::-1]

    async def recall(
        self,
        *,
        space_id: int,
        query: str,
        k: int | None = None,
        min_similarity: float | None = None,
    ) -> list[RecallHit]:
        """The memories of space `space_id` that best match `query`, best first.

        Semantic hits (cosine similarity at least `min_similarity`) and keyword hits on the
        SQL text are merged by reciprocal-rank fusion. A vector without a live row (expired,
        deleted, or an orphan) is dropped, so recall never shows what SQL does not hold.

        Args:
            space_id: the space to search (a memory never leaves its space).
            query: what to look for.
            k: how many results at most (default `recall_top_k`).
            min_similarity: the semantic floor (default `recall_min_similarity`).
        """
        settings = self._stores.settings
        text = normalise_text(query, limit=settings.max_memory_chars)
        k = k or settings.recall_top_k
        floor = settings.recall_min_similarity if min_similarity is None else min_similarity
        now = utcnow()
        embedding = asyncio.ensure_future(self._stores.embedder.embed(text))
        try:
            async with self._stores.reading() as repos:
                owned = await repos.memories.count(space_id=space_id, now=now)
                by_keyword = await repos.memories.keyword_search(
                    space_id=space_id, terms=keywords(text), now=now, limit=k * 2
                )
            vector = await embedding
        finally:
            embedding.cancel()
        hits = await self._stores.vectors.query(
            space_id=space_id, embedding=vector, k=k * 2, space_count=owned
        )
        similar = {uuid.UUID(h.id): h.similarity for h in hits if h.similarity >= floor}
        async with self._stores.reading() as repos:
            live = await repos.memories.live(ids=list(similar), space_id=space_id, now=now)
        semantic = [memory_id for memory_id in similar if memory_id in live]
        live.update({row.id: row for row in by_keyword})
        lexical = [row.id for row in by_keyword]
        scores = fuse([semantic, lexical])
        ranked = sorted(scores, key=lambda memory_id: scores[memory_id], reverse=True)[:k]
        return [
            RecallHit(
                memory=Memory.from_row(live[memory_id]),
                score=scores[memory_id],
                similarity=similar.get(memory_id),
                keyword=memory_id in lexical,
            )
            for memory_id in ranked
        ]
