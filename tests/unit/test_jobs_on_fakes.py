"""Scheduled jobs on fakes (both databases): expiry, the sweep's grace period, leadership.

Moved from tests/integration/test_jobs.py. What needs Chroma itself stays there: metadata
corrupted inside a collection, a lost Chroma directory, following a reindex made elsewhere.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import numpy as np
import pytest

from engine.app import MemoryEngine
from engine.clock import utcnow
from engine.inbox import Inbox, Received
from engine.uow import UnitOfWork
from jobs import runs
from storage.vector_types import VectorRecord


@pytest.mark.dates
async def test_expiry_deletes_from_both_stores(fake_engine: MemoryEngine) -> None:
    await fake_engine.users.register(user_id=1)
    past = utcnow() - timedelta(minutes=1)
    for i in range(7):
        await fake_engine.writes.save(space_id=1, text=f"fleeting {i}", expires_at=past)
    kept = await fake_engine.writes.save(
        space_id=1, text="lasting", expires_at=utcnow() + timedelta(days=1)
    )
    told: list[tuple[int, int]] = []

    async def notify(user_id: int, memories: list[Any]) -> None:
        told.append((user_id, len(memories)))

    outcome = await runs.expire(fake_engine, notify=notify)
    assert outcome.ran
    assert outcome.counts["expired"] == 7
    assert told == [(1, 7)]
    report = await fake_engine.index.check()
    assert (report.sql_count, report.vector_count, report.drift) == (1, 1, False)
    assert [m.id for m in (await fake_engine.reads.page(space_id=1)).items] == [kept.memory.id]


async def test_sweep_never_touches_a_vector_within_its_grace_period(
    fake_engine: MemoryEngine,
) -> None:
    await fake_engine.users.register(user_id=1)
    young = VectorRecord(
        "11111111-1111-4111-8111-111111111111", 1, np.ones(384, np.float32), 0, "y"
    )
    await fake_engine.stores.vectors.upsert([young])
    outcome = await runs.sweep(fake_engine)  # default grace: 600 s
    assert outcome.counts["skipped_in_grace"] == 1
    assert (await fake_engine.index.check()).vector_count == 1
    assert (await runs.sweep(fake_engine, grace_s=0)).counts["orphans_deleted"] == 1


async def test_a_save_in_flight_during_a_sweep_is_not_swept(fake_engine: MemoryEngine) -> None:
    await fake_engine.users.register(user_id=1)
    vector_written = asyncio.Event()
    release = asyncio.Event()
    real_commit = UnitOfWork._commit

    async def slow_commit(self: UnitOfWork) -> None:
        vector_written.set()
        await release.wait()
        await real_commit(self)

    UnitOfWork._commit = slow_commit  # type: ignore[method-assign]
    try:
        saving = asyncio.create_task(fake_engine.writes.save(space_id=1, text="in flight"))
        await vector_written.wait()
        UnitOfWork._commit = real_commit  # type: ignore[method-assign]
        sweeping = asyncio.create_task(runs.sweep(fake_engine))
        await asyncio.sleep(0.5)
        release.set()
        saved, swept = await asyncio.gather(saving, sweeping)
    finally:
        UnitOfWork._commit = real_commit  # type: ignore[method-assign]
    assert swept.counts["orphans_deleted"] == 0
    report = await fake_engine.index.check(space_id=1)
    assert (report.sql_count, report.vector_count, report.drift) == (1, 1, False)
    assert saved.created


async def test_two_sweeps_at_once_one_runs_one_skips(fake_engine: MemoryEngine) -> None:
    async with fake_engine.stores.leadership("sweep") as first:
        assert first
        second = await runs.sweep(fake_engine, grace_s=0)
    if fake_engine.stores.db.dialect == "postgresql":
        assert not second.ran
        assert "skipped" in second.describe()
    else:  # SQLite: one instance by design, the lock is a no-op
        assert second.ran
    assert (await runs.sweep(fake_engine, grace_s=0)).ran


async def test_prune_intake_keeps_recent_and_pending_updates(fake_engine: MemoryEngine) -> None:
    inbox = Inbox(fake_engine.stores)
    await inbox.store([Received(i, 7, {"update_id": i}) for i in (1, 2, 3)])
    await inbox.finish_and_claim([1, 2], chats=0)
    outcome = await runs.prune_intake(fake_engine)
    assert outcome.counts == {"pruned": 0}
    assert await inbox.statuses([1, 2, 3, 4]) == {1: "done", 2: "done", 3: "pending"}
    async with fake_engine.stores.unit_of_work("probe") as uow:
        uow.audit.add(action="probe")
