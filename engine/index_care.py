"""Index care: check, the orphan sweep (both directions, with a grace period), repair, reindex."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Sequence

from engine.consistency import (
    LAST_SWEEP_KEY,
    ConsistencyReport,
    SweepResult,
    compare,
    rebuild_keyword_index,
    settle_writes,
    still_without_row,
)
from engine.index_model import MODEL_KEY, ModelStatus, recorded_model
from engine.index_shards import SHARDS_KEY, recorded_shards, shards_record
from engine.memory import vector_record
from engine.model_follow import follow_model
from engine.stores import GENERATION_KEY, Stores
from engine.vector_index import VectorMeta, VectorRef
from storage.models import utcnow

SWEEP_BATCH = 256
FOLLOW_INTERVAL_S = 5
LAYOUT_KEY = "vector_layout"
LAYOUT = "spaces"  # vectors carry `space_id` metadata and are sharded by space (migration 0005)


class IndexCare:
    """Keeps the vector index equal to SQL, the source of truth."""

    def __init__(self, stores: Stores) -> None:
        self._stores = stores

    @property
    def generation(self) -> int:
        """The vector generation this process reads and writes."""
        return self._stores.vectors.generation

    async def check(self, *, space_id: int | None = None) -> ConsistencyReport:
        """Report drift between SQL and the index (for one space, or everyone)."""
        return await compare(self._stores, space_id=space_id)

    async def sweep(
        self,
        *,
        grace_s: int | None = None,
        ids: Sequence[str] | None = None,
        keep_going: Callable[[], bool] | None = None,
    ) -> SweepResult:
        """Repair drift between SQL and Chroma, in batches; safe to stop and run again.

        Vectors without a row are deleted once older than the grace period, and only if they
        still have no row once every write in flight has ended (`still_without_row`): a vector
        whose transaction is in flight is never touched, even with `grace_s=0`. Rows without a
        vector are re-embedded from their text, and vectors that disagree with their row (owner
        or text) are rewritten, each batch under the rows' write lock (flush → vector write →
        commit discipline: a concurrent edit or forget waits for us, or we for it).

        Args:
            grace_s: minimum age of drift to act on (default `sweep_grace_s`).
            ids: only these memory ids (None: everything).
            keep_going: asked before each batch; False stops the sweep there (its leader
                lost leadership): the rest is left for the next sweep.
        """
        going = keep_going or (lambda: True)
        grace = self._stores.settings.sweep_grace_s if grace_s is None else grace_s
        cutoff = time.time() - grace
        report = await self.check()
        if report.keyword_drift:
            await rebuild_keyword_index(self._stores)
        wanted = None if ids is None else set(ids)

        def pick(items: Sequence[VectorMeta]) -> tuple[list[VectorMeta], int]:
            chosen = [v for v in items if wanted is None or v.id in wanted]
            ripe = [v for v in chosen if v.written_at <= cutoff]
            return ripe, len(chosen) - len(ripe)

        ripe_orphans, young_orphans = pick(report.orphans)
        orphans = await still_without_row(self._stores, ripe_orphans)
        stale, young_stale = pick(report.stale)
        missing = [r for r in report.missing if wanted is None or r.id in wanted]
        for start in range(0, len(orphans), SWEEP_BATCH):
            if not going():
                break
            batch = orphans[start : start + SWEEP_BATCH]
            await self._stores.vectors.delete([v.ref for v in batch])
        rewrite = [*(uuid.UUID(r.id) for r in missing), *(uuid.UUID(v.id) for v in stale)]
        misplaced = {v.id: v.ref for v in stale}
        for start in range(0, len(rewrite), SWEEP_BATCH):
            if not going():
                break
            await self._rewrite_batch(rewrite[start : start + SWEEP_BATCH], misplaced)
        if going():  # a sweep stopped part way is not recorded as the last sweep
            async with self._stores.unit_of_work("sweep_mark") as uow:
                await uow.kv.set(LAST_SWEEP_KEY, utcnow().isoformat())
        return SweepResult(len(orphans), len(missing), len(stale), young_orphans + young_stale)

    async def _rewrite_batch(
        self, ids: Sequence[uuid.UUID], misplaced: dict[str, VectorRef]
    ) -> None:
        async with self._stores.reading() as repos:
            rows = await repos.memories.with_ids(ids)
        texts = {row.id: row.text for row in rows.values()}
        embedded = await self._stores.embedder.embed_many(list(texts.values()))
        vectors = dict(zip(texts, embedded, strict=True))
        async with self._stores.unit_of_work("repair") as uow:
            locked = await uow.memories.with_ids(list(texts), lock=True)
            current = [row for row in locked.values() if row.text == texts[row.id]]
            wrong_place = [
                misplaced[str(row.id)]
                for row in current
                if str(row.id) in misplaced and misplaced[str(row.id)].space_id != row.space_id
            ]
            if wrong_place:
                await uow.delete_vectors(wrong_place)
            await uow.upsert_vectors(
                [vector_record(row, vectors[row.id]) for row in current], replacing=True
            )

    async def repair(self, *, ids: Sequence[str] | None = None) -> SweepResult:
        """Repair drift now, without a grace period (after a CompensationFailed, or by hand).

        A save between its vector write and its commit keeps its vector: a vector without a
        row is deleted only if it still has none once the writes in flight have ended.
        """
        return await self.sweep(grace_s=0, ids=ids)

    async def reindex(
        self, *, progress: Callable[[int], None] | None = None, settle_s: float = 0.0
    ) -> int:
        """Rebuild every vector from SQL into a new generation, then switch to it.

        Recall keeps using the old generation until the switch. Other running processes
        follow the switch within FOLLOW_INTERVAL_S (`follow_generation`); `settle_s` waits for
        them. Then every write still in flight (its vector went to the old generation) is
        waited for, and a repair catches up with every write made meanwhile: a row committed
        by then without a vector in the new generation is re-embedded, and a vector of a save
        in flight (written to the new generation) is kept.

        Args:
            progress: called with the number of memories indexed by each chunk.
            settle_s: how long to wait for other processes after the switch (CLI: 15 s).

        Returns:
            How many memories were indexed.
        """
        vectors = self._stores.vectors
        async with self._stores.reading() as repos:
            ids = [row[0] for row in await repos.memories.index(space_id=None)]
        previous, target = vectors.generation, vectors.generation + 1
        shards = self._stores.settings.chroma_shards  # a new generation takes CHROMA_SHARDS
        vectors.set_shards(target, shards)
        await vectors.drop_generation(target)  # leftovers of an interrupted reindex
        size = self._stores.settings.bulk_chunk_size
        for start in range(0, len(ids), size):
            async with self._stores.reading() as repos:
                rows = list((await repos.memories.with_ids(ids[start : start + size])).values())
            embedded = await self._stores.embedder.embed_many([row.text for row in rows])
            records = [vector_record(row, v) for row, v in zip(rows, embedded, strict=True)]
            await vectors.upsert(records, generation=target)
            if progress is not None:
                progress(len(rows))
        async with self._stores.unit_of_work("reindex_switch") as uow:
            await uow.kv.set(GENERATION_KEY, str(target))
            await uow.kv.set(SHARDS_KEY, shards_record(target, shards))
            if self._stores.model is not None:  # the model that built it, recorded with it
                await uow.kv.set(MODEL_KEY, self._stores.model.record(target))
        await vectors.switch_generation(target)
        if settle_s:
            await asyncio.sleep(settle_s)
        await settle_writes(self._stores)  # what wrote to `previous` has committed or not
        await vectors.drop_generation(previous)
        await self.repair()  # catch up with writes made during the rebuild
        return len(ids)

    async def upgrade_layout(self) -> bool:
        """Rebuild vectors written before spaces (metadata `user_id`) once, by a reindex.

        Runs at start after the migrations; a no-op once done, or when another process holds
        the job. Returns True if this call did the upgrade.
        """
        async with self._stores.reading() as repos:
            if await repos.kv.get(LAYOUT_KEY) == LAYOUT:
                return False
        async with self._stores.leadership("upgrade_layout") as leader:
            if not leader:
                return False
            if await self._stores.vectors.count():
                await self.reindex()
            async with self._stores.unit_of_work("upgrade_layout") as uow:
                await uow.kv.set(LAYOUT_KEY, LAYOUT)
        return True

    async def model_status(self) -> ModelStatus:
        """The model the current generation was built with against the one this process
        uses (`check` reports a mismatch as drift)."""
        assert self._stores.model is not None
        generation = await self._stores.recorded_generation()
        async with self._stores.reading() as repos:
            recorded = await recorded_model(repos.kv, generation)
        return ModelStatus(recorded, self._stores.model)

    async def follow_generation(self) -> bool:
        """Switch to the generation recorded in SQL if another process reindexed (cheap);
        if that rebuild moved the index to another backend, embed with it first."""
        generation = await self._stores.recorded_generation()
        if generation == self._stores.vectors.generation:
            return False
        async with self._stores.reading() as repos:
            recorded = await recorded_model(repos.kv, generation)
            shards = await recorded_shards(repos.kv, generation)
        settings = self._stores.settings
        self._stores.vectors.set_shards(generation, shards or settings.chroma_shards)
        if await follow_model(self._stores, recorded):  # rebuilt with another backend: the
            await settle_writes(self._stores)  # old one's vectors end in the old generation
        await self._stores.vectors.switch_generation(generation)
        return True
