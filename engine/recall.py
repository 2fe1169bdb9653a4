"""Hybrid recall: the nearest vectors and the keyword index, fused by score (engine.ranking)."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Literal

from engine.memory import Memory, normalise_text
from engine.ranking import Candidate, cosine, keyword_score, query_terms, rank, selective, weights
from engine.stores import Stores
from engine.vector_index import VectorRef
from storage.filters import NO_FILTER, MemoryFilter
from storage.models import MemoryRow, utcnow
from storage.vector_types import Vector

KEYWORD_CANDIDATES = 4  # keyword hits asked for, per result wanted (at least MIN_KEYWORD)
MIN_KEYWORD = 20
SEMANTIC_CANDIDATES = 2  # nearest vectors asked for, per result wanted
EXACT_FILTERED = 300  # a filter keeping at most this many memories: score each of them
MAX_SEMANTIC = 1000
Mode = Literal["hybrid", "semantic", "keyword"]


@dataclass(frozen=True)
class RecallHit:
    memory: Memory
    score: float  # similarity + weighted keyword score: only the order means something
    similarity: float | None  # cosine similarity when it clears the semantic floor
    keyword: bool  # True when the memory holds query words the index found


@dataclass
class _Found:
    rows: dict[uuid.UUID, MemoryRow]  # live memories (that the filter keeps) by id
    similar: dict[uuid.UUID, float]  # cosine similarity by id, as far as known
    term_weights: dict[str, float]


async def recall(
    stores: Stores,
    *,
    space_id: int,
    query: str,
    k: int | None = None,
    min_similarity: float | None = None,
    wanted: MemoryFilter = NO_FILTER,
    mode: Mode = "hybrid",
) -> list[RecallHit]:
    """The memories of space `space_id` that best match `query`, best first.

    Candidates are the nearest vectors of the space and the keyword index's best matches
    (whole words, weighted by how rare they are in the space); each is scored by cosine
    similarity plus its keyword score (engine.ranking). A memory under the similarity floor
    is shown only if the keyword search found it, and after every one that clears the floor.
    A vector without a live row (expired, deleted, or an orphan) is dropped.

    Args:
        stores: the stores to read.
        space_id: the space to search (a memory never leaves its space).
        query: what to look for.
        k: how many results at most (default `recall_top_k`).
        min_similarity: the semantic floor (default `recall_min_similarity`).
        wanted: only memories with these #tags / created in this time range.
        mode: "semantic" or "keyword" use one search alone (to measure what fusion adds).
    """
    settings = stores.settings
    text = normalise_text(query, limit=settings.max_memory_chars)
    k = k or settings.recall_top_k
    floor = settings.recall_min_similarity if min_similarity is None else min_similarity
    terms = [] if mode == "semantic" else query_terms(text)
    if mode == "keyword":
        found, _owned, _scope = await _by_keyword(stores, space_id, terms, k, wanted)
        floor = float("inf")  # rank by keyword score alone
    else:
        embedding = asyncio.ensure_future(stores.embedder.embed(text))
        try:
            found, owned, scope = await _by_keyword(stores, space_id, terms, k, wanted)
            vector = await embedding
        finally:
            embedding.cancel()
        await _by_meaning(
            stores, found, space_id, vector, k=k, owned=owned, scope=scope, wanted=wanted
        )
    candidates = [
        Candidate(
            memory_id,
            found.similar.get(memory_id),
            keyword_score(row.text, found.term_weights),
            row.created_at,
        )
        for memory_id, row in found.rows.items()
    ]
    return [
        RecallHit(
            memory=Memory.from_row(found.rows[c.id]),
            score=c.score,
            similarity=c.similarity if c.cleared(floor) else None,
            keyword=c.keyword > 0,
        )
        for c in rank(candidates, floor=floor)[:k]
    ]


async def _by_keyword(
    stores: Stores, space_id: int, terms: list[str], k: int, wanted: MemoryFilter
) -> tuple[_Found, int, int | None]:
    """The keyword index's best matches, the term weights, the space's size and the filter's."""
    now = utcnow()
    async with stores.reading() as repos:
        owned = await repos.memories.count(space_id=space_id, now=now)
        scope = (
            None
            if wanted.empty
            else await repos.memories.count(space_id=space_id, now=now, wanted=wanted)
        )
        counts = await repos.memories.term_counts(space_id=space_id, terms=terms)
        hits = await repos.memories.keyword_search(
            space_id=space_id,
            terms=selective(counts, owned),
            now=now,
            limit=max(k * KEYWORD_CANDIDATES, MIN_KEYWORD),
            wanted=wanted,
        )
    rows = {row.id: row for row, _rank in hits}
    return _Found(rows, {}, weights(counts, owned)), owned, scope


async def _by_meaning(
    stores: Stores,
    found: _Found,
    space_id: int,
    vector: Vector,
    *,
    k: int,
    owned: int,
    scope: int | None,
    wanted: MemoryFilter,
) -> None:
    """Add the nearest live memories to `found` and the similarity of every candidate.

    With a filter that keeps few memories, each of them is scored (the nearest vectors of the
    whole space might all be filtered out); with a wider one, more vectors are asked for.
    """
    now = utcnow()
    if scope is not None and scope <= EXACT_FILTERED:
        async with stores.reading() as repos:
            kept = await repos.memories.page(
                space_id=space_id, now=now, limit=max(scope, 1), offset=0, wanted=wanted
            )
        found.rows.update({row.id: row for row in kept})
        await _score_missing(stores, found, space_id, vector)
        return
    fetch = k * SEMANTIC_CANDIDATES
    if scope is not None:
        fetch = min(MAX_SEMANTIC, owned, fetch * max(1, -(-owned // max(scope, 1))))
    hits = await stores.vectors.query(
        space_id=space_id, embedding=vector, k=fetch, space_count=owned
    )
    nearest = {uuid.UUID(h.id): h.similarity for h in hits}
    async with stores.reading() as repos:
        live = await repos.memories.live(
            ids=list(nearest), space_id=space_id, now=now, wanted=wanted
        )
    found.rows.update(live)
    found.similar.update({memory_id: nearest[memory_id] for memory_id in live})
    await _score_missing(stores, found, space_id, vector)


async def _score_missing(stores: Stores, found: _Found, space_id: int, vector: Vector) -> None:
    """Compute the similarity of the candidates the vector search did not return."""
    refs = [VectorRef(str(i), space_id) for i in found.rows if i not in found.similar]
    for record in await stores.vectors.fetch(refs):
        found.similar[uuid.UUID(record.id)] = cosine(record.embedding, vector)
