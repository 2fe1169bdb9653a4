"""An in-memory `VectorIndex`: exact cosine search, Chroma's placement, test controls."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from storage.vector_types import Vector, VectorHit, VectorMeta, VectorRecord, VectorRef

Slot = tuple[int, str]  # (shard, id): like Chroma, a vector is reached through its space's shard


class InMemoryVectorIndex:
    """The vector index contract held in dicts, with hooks to watch and break it.

    Every call is appended to `calls` as (method, ids). A method named in `fail_next` fails
    once with `ConnectionError`: before doing anything, or after applying its effect when
    `fail_after_apply` is set. `records` shows the current generation as id -> record.
    """

    def __init__(self, *, shards: int = 4, generation: int = 1) -> None:
        self._shards = {generation: shards}  # generation -> its shard count
        self.calls: list[tuple[str, list[str]]] = []
        self.fail_next: set[str] = set()
        self.fail_after_apply = False
        self.closed = False
        self._generation = generation
        self._data: dict[int, dict[Slot, tuple[VectorRecord, int]]] = {}  # gen -> slot -> (r, at)

    @property
    def generation(self) -> int:
        """The current generation: the one every call without `generation=` uses."""
        return self._generation

    @property
    def records(self) -> dict[str, VectorRecord]:
        """A snapshot of the current generation, id -> record."""
        return {record.id: record for record, _ in self._current.values()}

    @property
    def shards(self) -> int:
        """How many shards the current generation is spread over."""
        return self.shards_of(self._generation)

    def shards_of(self, generation: int) -> int:
        """How many shards `generation` is spread over (set, or the opening count)."""
        return self._shards.get(generation) or next(iter(self._shards.values()))

    def set_shards(self, generation: int, shards: int) -> None:
        """Spread `generation` over `shards` shards."""
        self._shards[generation] = shards

    def shard_of(self, space_id: int, generation: int | None = None) -> int:
        """The shard holding `space_id`'s vectors in `generation` (default: the current one)."""
        return space_id % self.shards_of(self._generation if generation is None else generation)

    @property
    def _current(self) -> dict[Slot, tuple[VectorRecord, int]]:
        return self._data.setdefault(self._generation, {})

    def _slot(self, ref: VectorRef, generation: int | None = None) -> Slot:
        return self.shard_of(ref.space_id, generation), ref.id

    def _call(self, method: str, ids: list[str] | None = None) -> bool:
        """Record the call; raise now, or return True when it must raise after applying."""
        if self.closed:
            raise RuntimeError("cannot schedule new futures after shutdown")
        self.calls.append((method, ids or []))
        if method not in self.fail_next:
            return False
        self.fail_next.discard(method)
        if not self.fail_after_apply:
            raise ConnectionError(f"fake {method} failed")
        return True

    @staticmethod
    def _done(method: str, fail_after: bool) -> None:
        if fail_after:
            raise ConnectionError(f"fake {method} failed after applying")

    async def upsert(
        self, records: Sequence[VectorRecord], *, generation: int | None = None
    ) -> None:
        """Add or replace `records` (idempotent) in `generation` (default: the current one)."""
        fail_after = self._call("upsert", [r.id for r in records])
        generation = self._generation if generation is None else generation
        target = self._data.setdefault(generation, {})
        written_at = int(time.time())
        for r in records:
            stored = VectorRecord(
                r.id,
                r.space_id,
                np.array(r.embedding, dtype=np.float32),
                r.created_at,
                r.digest,
                r.tags,
            )
            target[self._slot(r.ref, generation)] = (stored, written_at)
        self._done("upsert", fail_after)

    async def delete(self, refs: Sequence[VectorRef]) -> None:
        """Delete the vectors at `refs` from the current generation; missing ones are ignored."""
        fail_after = self._call("delete", [r.id for r in refs])
        for ref in refs:
            self._current.pop(self._slot(ref), None)
        self._done("delete", fail_after)

    async def fetch(self, refs: Sequence[VectorRef]) -> list[VectorRecord]:
        """The stored records at `refs` that exist (embeddings included)."""
        fail_after = self._call("fetch", [r.id for r in refs])
        found = {slot: self._current.get(slot) for slot in map(self._slot, refs)}
        self._done("fetch", fail_after)
        return [entry[0] for entry in found.values() if entry is not None]

    async def query(
        self, *, space_id: int, embedding: Vector, k: int, space_count: int
    ) -> list[VectorHit]:
        """The `k` nearest vectors of one space, best first, by exact cosine similarity."""
        fail_after = self._call("query")
        query = np.asarray(embedding, dtype=np.float64)
        hits: list[VectorHit] = []
        for (shard, id_), (record, _) in self._current.items():
            if shard == self.shard_of(space_id) and record.space_id == space_id:
                stored = record.embedding.astype(np.float64)
                norms = float(np.linalg.norm(stored) * np.linalg.norm(query)) or 1.0
                hits.append(VectorHit(id_, float(stored @ query) / norms))
        hits.sort(key=lambda hit: (-hit.similarity, hit.id))
        self._done("query", fail_after)
        return hits[: max(k, 0)] if space_count else []

    async def scan(self, space_id: int | None = None) -> list[VectorMeta]:
        """Metadata of every stored vector of one space, or of all spaces."""
        fail_after = self._call("scan")
        found = [
            VectorMeta(r.id, r.space_id, r.created_at, r.digest, written_at, r.tags)
            for r, written_at in self._current.values()
            if space_id is None or r.space_id == space_id
        ]
        self._done("scan", fail_after)
        return found

    async def count(self) -> int:
        """How many vectors the current generation holds."""
        fail_after = self._call("count")
        self._done("count", fail_after)
        return len(self._current)

    async def drop_generation(self, generation: int) -> None:
        """Delete every vector of `generation` (a no-op when it holds none)."""
        fail_after = self._call("drop_generation")
        self._data.pop(generation, None)
        self._done("drop_generation", fail_after)

    async def switch_generation(self, generation: int) -> None:
        """Make `generation` current; the previous one keeps its vectors until dropped."""
        fail_after = self._call("switch_generation")
        self._generation = generation
        self._done("switch_generation", fail_after)

    def close(self) -> None:
        """Refuse every later call, as the real index does once its workers are gone."""
        self.closed = True
