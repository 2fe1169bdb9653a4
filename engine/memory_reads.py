"""Memory reads: get, resolve a short id, a page of the list, export and hybrid recall."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from engine.errors import AmbiguousId, BadId, MemoryNotFound
from engine.memory import Memory
from engine.recall import RecallHit as RecallHit  # re-exported: handlers import it here
from engine.recall import recall
from engine.stores import Stores
from storage.filters import NO_FILTER, MemoryFilter
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

    async def page(
        self,
        *,
        space_id: int,
        offset: int = 0,
        limit: int = 10,
        wanted: MemoryFilter = NO_FILTER,
    ) -> Page:
        """A page of live memories (those `wanted` keeps), newest first."""
        now = utcnow()
        async with self._stores.reading() as repos:
            rows = await repos.memories.page(
                space_id=space_id, now=now, limit=limit, offset=offset, wanted=wanted
            )
            total = await repos.memories.count(space_id=space_id, now=now, wanted=wanted)
        return Page([Memory.from_row(r) for r in rows], total, offset, limit)

    async def tags(self, *, space_id: int) -> list[tuple[str, int]]:
        """(tag, how many live memories carry it) of space `space_id`, most used first.

        Ties are ordered by name; tags only expired memories carry are left out.
        """
        async with self._stores.reading() as repos:
            return await repos.tags.counts(space_id=space_id, now=utcnow())

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
        wanted: MemoryFilter = NO_FILTER,
    ) -> list[RecallHit]:
        """The memories of space `space_id` that best match `query`, best first.

        Hybrid recall by score (see engine.recall.recall, which does the work).

        Args:
            space_id: the space to search (a memory never leaves its space).
            query: what to look for.
            k: how many results at most (default `recall_top_k`).
            min_similarity: the semantic floor (default `recall_min_similarity`).
            wanted: only memories with these #tags / created in this time range.
        """
        return await recall(
            self._stores,
            space_id=space_id,
            query=query,
            k=k,
            min_similarity=min_similarity,
            wanted=wanted,
        )
