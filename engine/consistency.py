"""SQL against the vector index: what drifted (rows without vector, orphans, stale vectors)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import text

from engine.memory import text_digest
from engine.stores import Stores
from engine.vector_index import VectorMeta, VectorRef
from storage import keyword_index
from storage.keyword_index import KeywordDrift
from storage.models import MemoryRow, utcnow

LAST_SWEEP_KEY = "last_sweep_at"
SETTLE_TIMEOUT_S = 60  # PostgreSQL: longest wait for the writes in flight before giving up
ROW_CHECK_BATCH = 500


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
    keyword: KeywordDrift = field(default_factory=KeywordDrift)  # the keyword index vs rows

    @property
    def keyword_drift(self) -> bool:
        return bool(self.keyword.missing or self.keyword.stale or self.keyword.problems)

    @property
    def drift(self) -> bool:
        return bool(self.missing or self.orphans or self.stale or self.keyword_drift)

    def as_dict(self) -> dict[str, Any]:
        return {
            "scope": "all" if self.space_id is None else f"space {self.space_id}",
            "sql_count": self.sql_count,
            "vector_count": self.vector_count,
            "rows_without_vector": [r.id for r in self.missing],
            "vectors_without_row": [r.id for r in self.orphans],
            "stale_vectors": [r.id for r in self.stale],
            "expired_present": self.expired_present,
            "keyword_index_missing": self.keyword.missing,
            "keyword_index_stale": self.keyword.stale,
            "keyword_index_problems": list(self.keyword.problems),
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
    report.keyword = await keyword_drift(stores, space_id=space_id)
    return report


async def keyword_drift(stores: Stores, *, space_id: int | None) -> KeywordDrift:
    """Rows the keyword index misses, entries without a row, and (for everyone) whether the
    index still matches the rows' text (SQLite's FTS5 integrity check, under the write lock)."""
    async with stores.db.reads() as session:
        found = await keyword_index.drift(session, space_id=space_id)
    if space_id is not None:
        return found
    async with stores.db.writes() as session:
        matches = await keyword_index.content_matches(session)
        await session.rollback()
    if matches:
        return found
    return replace(found, problems=(*found.problems, "index differs from the rows' text"))


async def rebuild_keyword_index(stores: Stores) -> None:
    """Rebuild the keyword index from the rows in one transaction (SQLite: re-create missing
    triggers too; PostgreSQL: nothing to do, its generated column cannot drift)."""
    async with stores.unit_of_work("keyword_rebuild") as uow:
        await keyword_index.rebuild(uow.session)


async def settle_writes(stores: Stores) -> None:
    """Wait until every memory write in flight has committed or rolled back (a barrier).

    A unit of work changes its rows (flush) before it writes vectors, and holds them until it
    ends, so once this returns, every vector written before the call belongs to a transaction
    that has ended. PostgreSQL: a SHARE lock on the memories table, taken and released at
    once (it waits for every transaction that changed a memory; new writers wait for it, so
    it gives up after SETTLE_TIMEOUT_S). SQLite: the write lock, which one writer holds.
    """
    async with stores.unit_of_work("settle_writes") as uow:
        if stores.dialect == "postgresql":
            await uow.session.execute(text(f"SET LOCAL lock_timeout = '{SETTLE_TIMEOUT_S}s'"))
            await uow.session.execute(text(f"LOCK TABLE {MemoryRow.__tablename__} IN SHARE MODE"))
        else:
            await uow.session.execute(text("SELECT 1"))  # BEGIN IMMEDIATE: waits for the writer


async def still_without_row(stores: Stores, vectors: Sequence[VectorMeta]) -> list[VectorMeta]:
    """The vectors among `vectors` that still have no row once the writes in flight have ended.

    A vector seen without a row may belong to a save between its vector write and its commit;
    after `settle_writes` that save has committed (its row is found now) or rolled back.

    Args:
        stores: the stores to look in.
        vectors: vectors that `compare` found without a row.
    """
    if not vectors:
        return []
    await settle_writes(stores)
    keys = {vector.id: _as_uuid(vector.id) for vector in vectors}
    wanted = [key for key in keys.values() if key is not None]
    found: set[uuid.UUID] = set()
    async with stores.reading() as repos:
        for start in range(0, len(wanted), ROW_CHECK_BATCH):
            found.update(await repos.memories.with_ids(wanted[start : start + ROW_CHECK_BATCH]))
    return [vector for vector in vectors if keys[vector.id] not in found]


def _as_uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None  # not an id this bot writes: it cannot have a row
