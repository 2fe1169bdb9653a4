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
from storage.vector_types import VectorMeta, VectorRef
from storage.vectors import ChromaStore

GENERATION_KEY = "vector_generation"
LAST_SWEEP_KEY = "last_sweep_at"
Row = tuple[uuid.UUID, int, str, datetime, datetime | None]


@dataclass
class ConsistencyReport:
    """What SQL holds against what Chroma holds, for one user or for everyone."""

    user_id: int | None
    sql_count: int
    vector_count: int
    missing: list[VectorRef] = field(default_factory=list)  # row without vector
    orphans: list[VectorMeta] = field(default_factory=list)  # vector without row
    stale: list[VectorMeta] = field(default_factory=list)  # vector disagrees with its row
    expired_present: int = 0
    last_sweep_at: str | None = None

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
            "last_sweep_at": self.last_sweep_at,
            "drift": self.drift,
        }


async def active_generation(db: Database) -> int:
    """The vector generation recorded in SQL (1 before the first reindex)."""
    async with db.reads() as session:
        value = await repo.get_value(session, key=GENERATION_KEY)
    return int(value) if value else 1


class CheckOps(ServiceBase):
    """`check` and `reindex`; the sweep (in engine.repair) builds on them."""

    async def check(self, *, user_id: int | None = None) -> ConsistencyReport:
        """Compare SQL ids with Chroma ids (and owners and text digests).

        Args:
            user_id: one user's memories, or None for everyone's.
        """
        async with self.db.reads() as session:
            rows = await repo.memory_index(session, user_id=user_id)
        stored = await self.vectors.scan(user_id)
        now = utcnow()
        report = ConsistencyReport(user_id, len(rows), len(stored))
        truth = {str(memory_id): (owner, text_digest(text)) for memory_id, owner, text, *_ in rows}
        covered: set[str] = set()
        for vector in stored:  # one id can sit in two shards when its owner was corrupted
            row = truth.get(vector.id)
            if row is None:
                report.orphans.append(vector)
            elif (vector.user_id, vector.digest) != row:
                report.stale.append(vector)
            else:
                covered.add(vector.id)
        stale = {vector.id for vector in report.stale}
        for memory_id, owner, _text, _created, expires_at in rows:
            key = str(memory_id)
            if key not in covered and key not in stale:
                report.missing.append(VectorRef(key, owner))
            if expires_at is not None and expires_at <= now:
                report.expired_present += 1
        async with self.db.reads() as session:
            report.last_sweep_at = await repo.get_value(session, key=LAST_SWEEP_KEY)
        return report

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
