"""The vector index contract: everything the engine asks of the vector side of a memory."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from storage.vector_types import Vector, VectorHit, VectorMeta, VectorRecord, VectorRef

__all__ = ["Vector", "VectorHit", "VectorIndex", "VectorMeta", "VectorRecord", "VectorRef"]


class VectorIndex(Protocol):
    """Vectors keyed by memory id and placed by space, in numbered generations.

    Exactly one generation is current; reads and writes go to it unless a call names another
    (reindex builds generation N+1 beside the live one, then asks the index to switch).
    Implementations: `storage.vectors.ChromaIndex` (embedded or server) and the in-memory
    fake of the tests; `tests/integration/test_vector_contract.py` holds them to this text.
    """

    @property
    def generation(self) -> int:
        """The current generation: the one every call without `generation=` uses."""
        ...

    async def upsert(
        self, records: Sequence[VectorRecord], *, generation: int | None = None
    ) -> None:
        """Add or replace `records` (idempotent), stamping each with the time of writing."""
        ...

    async def delete(self, refs: Sequence[VectorRef]) -> None:
        """Delete the vectors at `refs` from the current generation; missing ones are ignored."""
        ...

    async def fetch(self, refs: Sequence[VectorRef]) -> list[VectorRecord]:
        """The stored records at `refs` that exist (embeddings included), in any order."""
        ...

    async def query(
        self, *, space_id: int, embedding: Vector, k: int, space_count: int
    ) -> list[VectorHit]:
        """The `k` nearest vectors of one space, best first, as cosine similarities.

        `space_count` is how many memories the space holds (from SQL); it may pick the plan.
        No other space's vector is ever returned.
        """
        ...

    async def scan(self, space_id: int | None = None) -> list[VectorMeta]:
        """Metadata of every stored vector of one space, or of all spaces."""
        ...

    async def count(self) -> int:
        """How many vectors the current generation holds."""
        ...

    async def drop_generation(self, generation: int) -> None:
        """Delete every vector of `generation` (a no-op when it holds none)."""
        ...

    async def switch_generation(self, generation: int) -> None:
        """Make `generation` current; the previous one keeps its vectors until dropped."""
        ...

    def set_shards(self, generation: int, shards: int) -> None:
        """Spread `generation` over `shards` collections (before its first write, or before
        switching to it); a generation never set keeps the count the index was opened with."""
        ...

    def close(self) -> None:
        """Release clients and worker threads without blocking the event loop."""
        ...
