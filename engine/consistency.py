"""SQL vs Chroma: report drift, repair it from SQL, and rebuild the whole index."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from engine.base import ServiceBase
from engine.memory import text_digest, vector_record
from storage import repositories as repo
from storage.db import Database
from storage.models import utcnow
from storage.vectors import ChromaStore, VectorRef

GENERATION_KEY = "vector_generation"
Row = tuple[uuid.UUID, int, str, datetime, datetime | None]


@dataclass
class ConsistencyReport:
    """What SQL holds against what Chroma holds, for one user or for everyone."""

    user_id: int | None
    sql_count: int
    vector_count: int
    missing: list[VectorRef] = field(default_factory=list)  # row without vector
    orphans: list[VectorRef] = field(default_factory=list)  # vector without row
    stale: list[VectorRef] = field(default_factory=list)  # vector disagrees with its row
    expired_present: int = 0

    @property
    def drift(self) -> bool:
        return bool(self.missing or self.orphans or self.stale)

    def as_dict(self) -> dict[str, Any]:
        return {
            "scope": "all" if self.user_id is None else f"user {self.user_id}",
            "sql_count": self.sql_count,
            "vector_count": self.vector_count,
            "rows_without_vector": [r.id for r in self.missing],
            "vectors_without_row": [r.id for r in self.orphans],
            "stale_vectors": [r.id for r in self.stale],
            "expired_present": self.expired_present,
            "drift": self.drift,
        }


@dataclass(frozen=True)
class RepairResult:
    reembedded: int
    deleted: int


async def active_generation(db: Database) -> int:
    """The vector generation recorded in SQL (1 before the first reindex)."""
    async with db.reads() as session:
        value = await repo.get_value(session, key=GENERATION_KEY)
    return int(value) if value else 1


class CheckOps(ServiceBase):
    """`check`, `repair` and `reindex`."""

    async def check(self, *, user_id: int | None = None) -> ConsistencyReport:
        """Compare SQL ids with Chroma ids (and owners and text digests).

        Args:
            user_id: one user's memories, or None for everyone's.
        """
        async with self.db.reads() as session:
            rows = await repo.memory_index(session, user_id=user_id)
        stored = {v.id: v for v in await self.vectors.scan(user_id)}
        now = utcnow()
        report = ConsistencyReport(user_id, len(rows), len(stored))
        seen: set[str] = set()
        for memory_id, owner, text, _created, expires_at in rows:
            key = str(memory_id)
            seen.add(key)
            vector = stored.get(key)
            if vector is None:
                report.missing.append(VectorRef(key, owner))
            elif vector.user_id != owner or vector.digest != text_digest(text):
                report.stale.append(VectorRef(key, vector.user_id))
            if expires_at is not None and expires_at <= now:
                report.expired_present += 1
        report.orphans = [VectorRef(v.id, v.user_id) for k, v in stored.items() if k not in seen]
        return report

    async def repair(self, *, ids: Sequence[str] | None = None) -> RepairResult:
        """Make Chroma match SQL: re-embed rows whose vector is missing or stale, delete orphans.

        Args:
            ids: only these memory ids (e.g. from a CompensationFailed), or None for all drift.
        """
        report = await self.check()
        wanted = None if ids is None else set(ids)
        pick = [r for r in (*report.missing, *report.stale) if wanted is None or r.id in wanted]
        orphans = [r for r in report.orphans if wanted is None or r.id in wanted]
        stale_owner = [r for r in report.stale if wanted is None or r.id in wanted]
        await self.vectors.delete([*orphans, *stale_owner])
        await self._embed_rows([uuid.UUID(r.id) for r in pick])
        return RepairResult(reembedded=len(pick), deleted=len(orphans))

    async def _embed_rows(
        self,
        ids: Sequence[uuid.UUID],
        into: ChromaStore | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        target = into or self.vectors
        size = self.settings.bulk_chunk_size
        for start in range(0, len(ids), size):
            async with self.db.reads() as session:
                rows = await repo.memories_with_ids(session, ids=ids[start : start + size])
            ordered = list(rows.values())
            vectors = await self.embedder.embed_many([row.text for row in ordered])
            await target.upsert(
                [vector_record(row, vector) for row, vector in zip(ordered, vectors, strict=True)]
            )
            if progress is not None:
                progress(len(ordered))

    async def reindex(self, *, progress: Callable[[int], None] | None = None) -> int:
        """Rebuild every vector from SQL into a new generation of collections, then switch.

        Recall keeps using the old generation until the switch; writes made meanwhile are
        caught up by a repair right after it.

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
        await previous.drop()
        await self.repair()
        return len(ids)
