"""Self-repair on real Chroma: damage made inside Chroma, a lost Chroma directory, reindex.

Expiry, the sweep's grace period, a save in flight during a sweep, job leadership and intake
pruning run on fakes in tests/unit/test_jobs_on_fakes.py; the sweep against every kind of
damage a `VectorIndex` call can make, in tests/unit/test_index_care.py.
"""

from __future__ import annotations

import shutil
from typing import Any

from chromadb.api.shared_system_client import SharedSystemClient

from engine.app import MemoryEngine
from jobs import runs
from storage.vector_types import VectorRecord, VectorRef
from storage.vectors import ChromaIndex

TEXTS = [
    "my passport is in the blue drawer",
    "the spare key is under the flower pot",
    "dentist appointment on friday at 3pm",
    "mum's birthday is on the 4th of june",
    "wifi password at the cabin is on the fridge",
    "the car is parked on level B, spot 42",
]
QUERIES = ["where is my passport", "spare key", "when is the dentist", "birthday", "car"]


async def seed(engine: MemoryEngine) -> list[str]:
    await engine.users.register(user_id=1)
    await engine.users.register(user_id=2)
    saved = await engine.writes.save_many(space_id=1, texts=TEXTS)
    await engine.writes.save(space_id=2, text="someone else's note")
    return [str(r.memory.id) for r in saved]


async def answers(engine: MemoryEngine) -> list[list[str]]:
    return [
        [str(h.memory.id) for h in await engine.reads.recall(space_id=1, query=q)] for q in QUERIES
    ]


async def test_sweep_repairs_every_kind_of_damage(engine: MemoryEngine, reopen: Any) -> None:
    ids = await seed(engine)
    before = await answers(engine)
    vectors = engine.stores.vectors
    await vectors.delete([VectorRef(ids[0], 1), VectorRef(ids[1], 1)])  # rows without vectors
    [record] = await vectors.fetch([VectorRef(ids[2], 1)])
    await vectors.upsert(
        [VectorRecord(ids[2], 7, record.embedding, 0, record.digest)]
    )  # wrong owner
    await vectors.upsert([VectorRecord(ids[3], 1, record.embedding, 0, "0" * 16)])  # stale text
    orphan = VectorRecord("00000000-0000-4000-8000-000000000000", 1, record.embedding, 0, "x")
    await vectors.upsert([orphan])  # vector without row
    assert isinstance(vectors, ChromaIndex)
    shard = vectors._collection(vectors.shard_of(1))  # corrupt metadata in place
    [meta] = shard.get(ids=[ids[4]], include=["metadatas"])["metadatas"]
    shard.update(ids=[ids[4]], metadatas=[{**meta, "space_id": 9}])
    damaged = await engine.index.check()
    assert (len(damaged.missing), len(damaged.orphans), len(damaged.stale)) == (2, 1, 3)
    outcome = await runs.sweep(engine, grace_s=0)
    assert outcome.counts == {
        "orphans_deleted": 1,
        "reembedded": 2,
        "rewritten": 3,
        "skipped_in_grace": 0,
    }
    fresh: MemoryEngine = await reopen()
    report = await fresh.index.check()
    assert not report.drift, report.as_dict()
    assert report.last_sweep_at is not None
    assert await answers(fresh) == before


async def test_lost_chroma_directory_is_rebuilt_by_reindex(
    engine: MemoryEngine, reopen: Any
) -> None:
    if engine.settings.chroma_url:
        return
    await seed(engine)
    before = await answers(engine)
    await engine.aclose()
    SharedSystemClient.clear_system_cache()  # as after a restart: no cached Chroma system
    shutil.rmtree(engine.settings.chroma_path)
    fresh: MemoryEngine = await reopen()
    lost = await fresh.index.check()
    assert (lost.vector_count, len(lost.missing)) == (0, lost.sql_count)
    assert await fresh.index.reindex() == lost.sql_count
    assert not (await fresh.index.check()).drift
    assert await answers(fresh) == before


async def test_a_running_engine_follows_a_reindex_made_elsewhere(
    engine: MemoryEngine, reopen: Any
) -> None:
    await seed(engine)
    before = await answers(engine)
    elsewhere: MemoryEngine = await reopen()  # e.g. `memorybot reindex` next to the bot
    await elsewhere.index.reindex()
    assert await engine.index.follow_generation()
    assert not await engine.index.follow_generation()
    assert engine.index.generation == elsewhere.index.generation
    saved = await engine.writes.save(space_id=1, text="written after the switch")
    assert await answers(engine) == before
    report = await elsewhere.index.check()
    assert not report.drift
    assert str(saved.memory.id) not in {r.id for r in report.missing}
