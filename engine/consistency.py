"""SQL against the vector index: what drifted (rows without vector, orphans, stale vectors)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.memory import text_digest
from engine.stores import Stores
from engine.vector_index import VectorMeta, VectorRef
from storage.models import utcnow

LAST_SWEEP_KEY = "last_sweep_at"


@dataclass
class ConsistencyReport:
    """What SQL holds against what Chroma holds, for one space or for everyone."""

    space_id: int | None
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
            "scope": "all" if self.space_id is None else f"space {self.space_id}",
            "sql_count": self.sql_count,
            "vector_count": self.vector_count,
            "rows_without_vector": [r.id for r in self.missing],
            "vectors_without_row": [r.id for r in self.orphans],
            "stale_vectors": [r.id for r in self.stale],
            "expired_present": self.expired_present,
            "last_sweep_at": self.last_sweep_at,
            "drift": self.drift,
        }


async def compare(stores: Stores, *, space_id: int | None = None) -> ConsistencyReport:
    """Compare SQL ids with the index's ids (and owners and text digests).

    Args:
        stores: the stores to compare.
        space_id: one space's memories, or None for everyone's.
    """
    async with stores.reading() as repos:
        rows = await repos.memories.index(space_id=space_id)
    stored = await stores.vectors.scan(space_id)
    now = utcnow()
    report = ConsistencyReport(space_id, len(rows), len(stored))
    truth = {str(memory_id): (owner, text_digest(text)) for memory_id, owner, text, *_ in rows}
    covered: set[str] = set()
    for vector in stored:  # one id can sit in two shards when its owner was corrupted
        row = truth.get(vector.id)
        if row is None:
            report.orphans.append(vector)
        elif (vector.space_id, vector.digest) != row:
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
    async with stores.reading() as repos:
        report.last_sweep_at = await repos.kv.get(LAST_SWEEP_KEY)
    return report
