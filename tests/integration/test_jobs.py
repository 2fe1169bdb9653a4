"""Jobs and self-repair: expiry, the sweep both ways with its grace period, leadership, reindex."""

from __future__ import annotations

import asyncio
import shutil
from datetime import timedelta
from typing import Any

import numpy as np
from chromadb.api.shared_system_client import SharedSystemClient

from engine.app import MemoryEngine
from engine.uow import UnitOfWork
from jobs import runs
from jobs.leader import leadership
from storage import repositories as repo
from storage.models import utcnow
from storage.vector_types import VectorRecord, VectorRef

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
    saved = await engine.memories.save_many(user_id=1, texts=TEXTS)
    await engine.memories.save(user_id=2, text="someone else's note")
    return [str(r.memory.id) for r in saved]


async def answers(engine: MemoryEngine) -> list[list[str]]:
    return [
        [str(h.memory.id) for h in await engine.memories.recall(user_id=1, query=q)]
        for q in QUERIES
    ]


async def test_expiry_deletes_from_both_stores(engine: MemoryEngine) -> None:
    await engine.users.register(user_id=1)
    past = utcnow() - timedelta(minutes=1)
    for i in range(7):
        await engine.memories.save(user_id=1, text=f"fleeting {i}", expires_at=past)
    kept = await engine.memories.save(
        user_id=1, text="lasting", expires_at=utcnow() + timedelta(days=1)
    )
    told: list[tuple[int, int]] = []

    async def notify(user_id: int, memories: list[Any]) -> None:
        told.append((user_id, len(memories)))

    outcome = await runs.expire(engine, notify=notify)
    assert outcome.ran
    assert outcome.counts["expired"] == 7
    assert told == [(1, 7)]
    report = await engine.memories.check()
    assert (report.sql_count, report.vector_count, report.drift) == (1, 1, False)
    assert [m.id for m in (await engine.memories.list(user_id=1)).items] == [kept.memory.id]


async def test_sweep_repairs_every_kind_of_damage(engine: MemoryEngine, reopen: Any) -> None:
    ids = await seed(engine)
    before = await answers(engine)
    vectors = engine.memories.vectors
    await vectors.delete([VectorRef(ids[0], 1), VectorRef(ids[1], 1)])  # rows without vectors
    [record] = await vectors.fetch([VectorRef(ids[2], 1)])
    await vectors.upsert(
        [VectorRecord(ids[2], 7, record.embedding, 0, record.digest)]
    )  # wrong owner
    await vectors.upsert([VectorRecord(ids[3], 1, record.embedding, 0, "0" * 16)])  # stale text
    orphan = VectorRecord("00000000-0000-4000-8000-000000000000", 1, record.embedding, 0, "x")
    await vectors.upsert([orphan])  # vector without row
    shard = vectors._collection(vectors.shard_of(1))  # corrupt metadata in place
    [meta] = shard.get(ids=[ids[4]], include=["metadatas"])["metadatas"]
    shard.update(ids=[ids[4]], metadatas=[{**meta, "user_id": 9}])
    damaged = await engine.memories.check()
    assert (len(damaged.missing), len(damaged.orphans), len(damaged.stale)) == (2, 1, 3)
    outcome = await runs.sweep(engine, grace_s=0)
    assert outcome.counts == {
        "orphans_deleted": 1,
        "reembedded": 2,
        "rewritten": 3,
        "skipped_in_grace": 0,
    }
    fresh: MemoryEngine = await reopen()
    report = await fresh.memories.check()
    assert not report.drift, report.as_dict()
    assert report.last_sweep_at is not None
    assert await answers(fresh) == before


async def test_sweep_never_touches_a_vector_within_its_grace_period(engine: MemoryEngine) -> None:
    await engine.users.register(user_id=1)
    young = VectorRecord(
        "11111111-1111-4111-8111-111111111111", 1, np.ones(384, np.float32), 0, "y"
    )
    await engine.memories.vectors.upsert([young])
    outcome = await runs.sweep(engine)  # default grace: 600 s
    assert outcome.counts["skipped_in_grace"] == 1
    assert (await engine.memories.check()).vector_count == 1
    assert (await runs.sweep(engine, grace_s=0)).counts["orphans_deleted"] == 1


async def test_a_save_in_flight_during_a_sweep_is_not_swept(engine: MemoryEngine) -> None:
    await engine.users.register(user_id=1)
    vector_written = asyncio.Event()
    release = asyncio.Event()
    real_commit = UnitOfWork.commit

    async def slow_commit(self: UnitOfWork) -> None:
        vector_written.set()
        await release.wait()
        await real_commit(self)

    UnitOfWork.commit = slow_commit  # type: ignore[method-assign]
    try:
        saving = asyncio.create_task(engine.memories.save(user_id=1, text="in flight"))
        await vector_written.wait()
        UnitOfWork.commit = real_commit  # type: ignore[method-assign]
        sweeping = asyncio.create_task(runs.sweep(engine))
        await asyncio.sleep(0.5)
        release.set()
        saved, swept = await asyncio.gather(saving, sweeping)
    finally:
        UnitOfWork.commit = real_commit  # type: ignore[method-assign]
    assert swept.counts["orphans_deleted"] == 0
    report = await engine.memories.check(user_id=1)
    assert (report.sql_count, report.vector_count, report.drift) == (1, 1, False)
    assert saved.created


async def test_two_sweeps_at_once_one_runs_one_skips(engine: MemoryEngine) -> None:
    async with leadership(engine.db, "sweep") as first:
        assert first
        second = await runs.sweep(engine, grace_s=0)
    if engine.db.dialect == "postgresql":
        assert not second.ran
        assert "skipped" in second.describe()
    else:  # SQLite: one instance by design, the lock is a no-op
        assert second.ran
    assert (await runs.sweep(engine, grace_s=0)).ran


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
    lost = await fresh.memories.check()
    assert (lost.vector_count, len(lost.missing)) == (0, lost.sql_count)
    assert await fresh.memories.reindex() == lost.sql_count
    assert not (await fresh.memories.check()).drift
    assert await answers(fresh) == before


async def test_prune_intake_keeps_recent_update_ids(engine: MemoryEngine) -> None:
    from engine.ledger import UpdateLedger

    ledger = UpdateLedger(engine.db)
    await ledger.mark_many([1, 2, 3])
    outcome = await runs.prune_intake(engine)
    assert outcome.counts == {"pruned": 0}
    assert await ledger.seen_many([1, 2, 3, 4]) == {1, 2, 3}
    async with engine.db.writes() as session:
        await repo.add_audit(session, action="probe")
        await session.commit()


async def test_a_running_engine_follows_a_reindex_made_elsewhere(
    engine: MemoryEngine, reopen: Any
) -> None:
    await seed(engine)
    before = await answers(engine)
    elsewhere: MemoryEngine = await reopen()  # e.g. `memorybot reindex` next to the bot
    await elsewhere.memories.reindex()
    assert await engine.memories.follow_generation()
    assert not await engine.memories.follow_generation()
    assert engine.memories.vectors.generation == elsewhere.memories.vectors.generation
    saved = await engine.memories.save(user_id=1, text="written after the switch")
    assert await answers(engine) == before
    report = await elsewhere.memories.check()
    assert not report.drift
    assert str(saved.memory.id) not in {r.id for r in report.missing}
