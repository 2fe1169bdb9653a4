"""Index care on fakes (both databases): drift seen by check and recall, repair, reindex.

Moved from tests/integration/test_engine.py, plus the sweep against every kind of damage a
`VectorIndex` call can make. What needs Chroma itself stays in integration: metadata corrupted
inside a collection and a lost Chroma directory (test_jobs.py), a fresh Chroma client opening
the generation a reindex recorded (test_engine.py), a running engine following a reindex made
elsewhere (test_jobs.py).
"""

from __future__ import annotations

from engine.app import MemoryEngine
from storage.repositories import MemoryRepository
from storage.vector_types import VectorRecord, VectorRef
from tests.fakes.vector_index import InMemoryVectorIndex
from tests.unit.conftest import Reopen

ORPHAN_ID = "00000000-0000-4000-8000-000000000000"


async def test_recall_drops_vectors_without_a_live_row(
    fake_engine: MemoryEngine, alice: int
) -> None:
    saved = await fake_engine.writes.save(space_id=alice, text="the boat keys hang by the door")
    async with fake_engine.stores.db.writes() as session:  # damage: the row goes, not the vector
        await MemoryRepository(session).delete([saved.memory.id])
        await session.commit()
    hits = await fake_engine.reads.recall(space_id=alice, query="boat keys", min_similarity=-1)
    assert hits == []
    report = await fake_engine.index.check()
    assert [r.id for r in report.orphans] == [str(saved.memory.id)]
    await fake_engine.index.repair()
    assert not (await fake_engine.index.check()).drift


async def test_reindex_rebuilds_from_sql(
    fake_engine: MemoryEngine, alice: int, reopen_fake: Reopen
) -> None:
    await fake_engine.writes.save_many(space_id=alice, texts=[f"fact {i}" for i in range(70)])
    recalled = await fake_engine.reads.recall(space_id=alice, query="fact 7")
    before = [h.memory.id for h in recalled]
    seen: list[int] = []
    assert await fake_engine.index.reindex(progress=seen.append) == 70
    assert sum(seen) == 70
    assert fake_engine.index.generation == 2
    fresh = await reopen_fake()
    assert fresh.index.generation == 2
    assert await fresh.stores.recorded_generation() == 2
    assert not (await fresh.index.check()).drift
    after = [h.memory.id for h in await fresh.reads.recall(space_id=alice, query="fact 7")]
    assert after == before


async def test_sweep_repairs_every_kind_of_index_damage(
    fake_engine: MemoryEngine, fake_index: InMemoryVectorIndex, reopen_fake: Reopen
) -> None:
    await fake_engine.users.register(user_id=1)
    texts = ["spare key under the pot", "passport in the drawer", "dentist on friday", "car"]
    saved = await fake_engine.writes.save_many(space_id=1, texts=texts)
    ids = [str(r.memory.id) for r in saved]
    before = await fake_engine.reads.recall(space_id=1, query="where is the spare key")
    await fake_index.delete([VectorRef(ids[0], 1), VectorRef(ids[1], 1)])  # rows without vectors
    [record] = await fake_index.fetch([VectorRef(ids[2], 1)])
    await fake_index.upsert([VectorRecord(ids[2], 7, record.embedding, 0, record.digest)])
    await fake_index.upsert([VectorRecord(ids[3], 1, record.embedding, 0, "0" * 16)])  # stale
    await fake_index.upsert([VectorRecord(ORPHAN_ID, 1, record.embedding, 0, "x")])
    damaged = await fake_engine.index.check()
    assert (len(damaged.missing), len(damaged.orphans), len(damaged.stale)) == (2, 1, 2)
    result = await fake_engine.index.repair()
    assert result.as_dict() == {
        "orphans_deleted": 1,
        "reembedded": 2,
        "rewritten": 2,
        "skipped_in_grace": 0,
    }
    fresh = await reopen_fake()
    report = await fresh.index.check()
    assert not report.drift, report.as_dict()
    assert report.last_sweep_at is not None
    assert sorted(fake_index.records) == sorted(ids)
    assert await fake_index.count() == len(ids)  # the copy in user 7's shard is gone too
    after = await fresh.reads.recall(space_id=1, query="where is the spare key")
    assert [h.memory.id for h in after] == [h.memory.id for h in before]
