"""Self-repair: the orphan sweep (both directions, with a grace period), repair and reindex."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import select

from engine.consistency import GENERATION_KEY, LAST_SWEEP_KEY, CheckOps, active_generation
from engine.memory import vector_record
from storage import repositories as repo
from storage.models import MemoryRow, utcnow
from storage.vector_types import VectorMeta, VectorRef

SWEEP_BATCH = 256
FOLLOW_INTERVAL_S = 5


@dataclass(frozen=True)
class SweepResult:
    orphans_deleted: int  # vectors without a row, older than the grace period
    reembedded: int  # rows whose vector was missing
    rewritten: int  # vectors whose owner or text disagreed with SQL
    skipped_in_grace: int  # drift too recent to touch: its transaction may be in flight

    def as_dict(self) -> dict[str, int]:
        return {
            "orphans_deleted": self.orphans_deleted,
            "reembedded": self.reembedded,
            "rewritten": self.rewritten,
            "skipped_in_grace": self.skipped_in_grace,
        }


class RepairOps(CheckOps):
    """`sweep`, `repair` and `reindex`: make Chroma match SQL, the source of truth."""

    async def sweep(
        self, *, grace_s: int | None = None, ids: Sequence[str] | None = None
    ) -> SweepResult:
        """Repair drift between SQL and Chroma, in batches; safe to stop and run again.

        Vectors without a row are deleted once older than the grace period, so a vector whose
        transaction may still be in flight is never touched. Rows without a vector are
        re-embedded from their text, and vectors that disagree with their row (owner or text)
        are rewritten, each batch under the rows' write lock (flush → vector write → commit
        discipline: a concurrent edit or forget waits for us, or we for it).

        Args:
            grace_s: minimum age of drift to act on (default `sweep_grace_s`).
            ids: only these memory ids (None: everything).
        """
        grace = self.settings.sweep_grace_s if grace_s is None else grace_s
        cutoff = time.time() - grace
        report = await self.check()
        wanted = None if ids is None else set(ids)

        def pick(items: Sequence[VectorMeta]) -> tuple[list[VectorMeta], int]:
            chosen = [v for v in items if wanted is None or v.id in wanted]
            ripe = [v for v in chosen if v.written_at <= cutoff]
            return ripe, len(chosen) - len(ripe)

        orphans, young_orphans = pick(report.orphans)
        stale, young_stale = pick(report.stale)
        missing = [r for r in report.missing if wanted is None or r.id in wanted]
        for start in range(0, len(orphans), SWEEP_BATCH):
            await self.vectors.delete([v.ref for v in orphans[start : start + SWEEP_BATCH]])
        rewrite = [*(uuid.UUID(r.id) for r in missing), *(uuid.UUID(v.id) for v in stale)]
        misplaced = {v.id: v.ref for v in stale}
        for start in range(0, len(rewrite), SWEEP_BATCH):
            await self._rewrite_batch(rewrite[start : start + SWEEP_BATCH], misplaced)
        async with self.db.writes() as session:
            await repo.set_value(session, key=LAST_SWEEP_KEY, value=utcnow().isoformat())
            await session.commit()
        return SweepResult(len(orphans), len(missing), len(stale), young_orphans + young_stale)

    async def _rewrite_batch(
        self, ids: Sequence[uuid.UUID], misplaced: dict[str, VectorRef]
    ) -> None:
        async with self.db.reads() as session:
            rows = await repo.memories_with_ids(session, ids=ids)
        texts = {row.id: row.text for row in rows.values()}
        vectors = dict(
            zip(texts, await self.embedder.embed_many(list(texts.values())), strict=True)
        )
        async with self.unit_of_work("repair") as uow:
            locked = await uow.session.scalars(
                select(MemoryRow).where(MemoryRow.id.in_(list(texts))).with_for_update()
            )
            current = [row for row in locked if row.text == texts[row.id]]  # not edited since
            wrong_place = [
                misplaced[str(row.id)]
                for row in current
                if str(row.id) in misplaced and misplaced[str(row.id)].user_id != row.user_id
            ]
            if wrong_place:
                await uow.delete_vectors(wrong_place)
            await uow.upsert_vectors(
                [vector_record(row, vectors[row.id]) for row in current], replacing=True
            )
            await uow.commit()

    async def repair(self, *, ids: Sequence[str] | None = None) -> SweepResult:
        """Repair drift now, without a grace period (after a CompensationFailed, or by hand)."""
        return await self.sweep(grace_s=0, ids=ids)

    async def reindex(
        self, *, progress: Callable[[int], None] | None = None, settle_s: float = 0.0
    ) -> int:
        """Rebuild every vector from SQL into a new generation of collections, then switch.

        Recall keeps using the old generation until the switch. Other running processes
        follow the switch within FOLLOW_INTERVAL_S (`follow_generation`); `settle_s` waits for
        them before the old generation is dropped, and a sweep then catches up with every
        write made meanwhile.

        Args:
            progress: called with the number of memories indexed by each chunk.
            settle_s: how long to wait for other processes after the switch (CLI: 15 s).

        Returns:
            How many memories were indexed.
        """
        async with self.db.reads() as session:
            ids = [row[0] for row in await repo.memory_index(session, user_id=None)]
        target = self.vectors.sibling(self.vectors.generation + 1)
        await target.drop()  # leftovers of an interrupted reindex
        await self._embed_rows(ids, into=target, progress=progress)
        async with self.db.writes() as session:
            await repo.set_value(session, key=GENERATION_KEY, value=str(target.generation))
            await session.commit()
        previous, self.vectors = self.vectors, target
        if settle_s:
            await asyncio.sleep(settle_s)
        await previous.drop()
        previous.close(wait=False)
        await self.sweep(grace_s=0)  # catch up with writes made during the rebuild
        return len(ids)

    async def follow_generation(self) -> bool:
        """Switch to the generation recorded in SQL if another process reindexed (cheap)."""
        generation = await active_generation(self.db)
        if generation == self.vectors.generation:
            return False
        previous, self.vectors = self.vectors, self.vectors.sibling(generation)
        previous.close(wait=False)
        return True
