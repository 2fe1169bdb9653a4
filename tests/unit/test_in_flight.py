"""`repair` and `reindex` never delete the vector of a transaction in flight (both databases).

A write is held between its vector write and its commit (`Pause`) while repair or reindex
runs; once it commits, its vector is where SQL says and `check` is clean. A reindex takes in a
save whose vector went to the old generation (written before the switch) as well as one whose
vector went to the new generation (written after it), and a forget of a row it rebuilt.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from engine.app import MemoryEngine
from storage.vector_types import VectorRecord
from tests.fakes.vector_index import InMemoryVectorIndex

ORPHAN_ID = "00000000-0000-4000-8000-00000000beef"
LIMIT_S = 20.0  # no step here takes long; a hang fails instead of blocking the run


class Pause:
    """Holds the next `method` call of the index (a write's vector step) once it has landed.

    The unit of work that made the call is then between its vector write and its commit
    until `release()`. Calls naming a `generation` (a reindex building) are not held.
    """

    def __init__(
        self, index: InMemoryVectorIndex, method: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        self.landed = asyncio.Event()
        self._release = asyncio.Event()
        self._armed = False
        real: Callable[..., Awaitable[None]] = getattr(index, method)

        async def held(*args: Any, **kwargs: Any) -> None:
            await real(*args, **kwargs)
            if self._armed and kwargs.get("generation") is None:
                self._armed = False
                self.landed.set()
                await self._release.wait()

        monkeypatch.setattr(index, method, held)

    def arm(self) -> None:
        self._armed = True

    def release(self) -> None:
        self._release.set()


async def run_alongside(task: asyncio.Task[Any]) -> None:
    """Let `task` go as far as it can while the paused write waits (to its end, or a lock)."""
    await asyncio.wait({task}, timeout=0.5)


async def paused_save(
    engine: MemoryEngine, pause: Pause, space_id: int, text: str
) -> asyncio.Task[Any]:
    pause.arm()
    saving = asyncio.create_task(engine.writes.save(space_id=space_id, text=text))
    await asyncio.wait_for(pause.landed.wait(), LIMIT_S)
    return saving


async def test_repair_keeps_the_vector_of_a_save_in_flight(
    fake_engine: MemoryEngine,
    fake_index: InMemoryVectorIndex,
    alice: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await fake_engine.writes.save(space_id=alice, text="the spare key is under the mat")
    [kept] = fake_index.records.values()
    await fake_index.upsert([VectorRecord(ORPHAN_ID, alice, kept.embedding, 0, "x")])
    pause = Pause(fake_index, "upsert", monkeypatch)
    saving = await paused_save(fake_engine, pause, alice, "the gate code is on the fridge")
    repairing = asyncio.create_task(fake_engine.index.repair())
    await run_alongside(repairing)
    pause.release()
    saved = await asyncio.wait_for(saving, LIMIT_S)
    result = await asyncio.wait_for(repairing, LIMIT_S)
    assert result.orphans_deleted == 1  # the real orphan only
    assert ORPHAN_ID not in fake_index.records
    assert str(saved.memory.id) in fake_index.records
    report = await fake_engine.index.check()
    assert not report.drift, report.as_dict()


async def test_repair_keeps_the_vector_of_a_save_that_commits_meanwhile(
    fake_engine: MemoryEngine,
    fake_index: InMemoryVectorIndex,
    alice: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pause = Pause(fake_index, "upsert", monkeypatch)
    saving = await paused_save(fake_engine, pause, alice, "the boat keys hang by the door")
    real_scan = fake_index.scan

    async def scan_then_commit(space_id: int | None = None) -> Any:
        found = await real_scan(space_id)  # the save's vector, and no row for it yet
        pause.release()
        await asyncio.wait_for(saving, LIMIT_S)  # committed before repair deletes anything
        return found

    monkeypatch.setattr(fake_index, "scan", scan_then_commit)
    result = await asyncio.wait_for(fake_engine.index.repair(), LIMIT_S)
    monkeypatch.setattr(fake_index, "scan", real_scan)
    assert result.orphans_deleted == 0
    assert str(saving.result().memory.id) in fake_index.records
    assert not (await fake_engine.index.check()).drift


async def test_reindex_takes_in_a_save_whose_vector_went_to_the_old_generation(
    fake_engine: MemoryEngine,
    fake_index: InMemoryVectorIndex,
    alice: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await fake_engine.writes.save_many(space_id=alice, texts=[f"fact {i}" for i in range(5)])
    pause = Pause(fake_index, "upsert", monkeypatch)
    saving = await paused_save(fake_engine, pause, alice, "the gate code is on the fridge")
    reindexing = asyncio.create_task(fake_engine.index.reindex())
    await run_alongside(reindexing)
    pause.release()
    saved = await asyncio.wait_for(saving, LIMIT_S)
    await asyncio.wait_for(reindexing, LIMIT_S)
    assert fake_engine.index.generation == 2
    assert str(saved.memory.id) in fake_index.records  # the current generation: 2
    assert len(fake_index.records) == 6
    report = await fake_engine.index.check()
    assert not report.drift, report.as_dict()


async def test_reindex_keeps_a_save_whose_vector_went_to_the_new_generation(
    fake_engine: MemoryEngine,
    fake_index: InMemoryVectorIndex,
    alice: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await fake_engine.writes.save_many(space_id=alice, texts=[f"fact {i}" for i in range(5)])
    pause = Pause(fake_index, "upsert", monkeypatch)
    real_switch = fake_index.switch_generation
    saving: list[asyncio.Task[Any]] = []

    async def switch_then_save(generation: int) -> None:
        await real_switch(generation)  # from here on a save writes to the new generation
        saving.append(await paused_save(fake_engine, pause, alice, "the gate code is 4711"))

    monkeypatch.setattr(fake_index, "switch_generation", switch_then_save)
    reindexing = asyncio.create_task(fake_engine.index.reindex())
    await asyncio.wait_for(pause.landed.wait(), LIMIT_S)
    await run_alongside(reindexing)
    pause.release()
    saved = await asyncio.wait_for(saving[0], LIMIT_S)
    await asyncio.wait_for(reindexing, LIMIT_S)
    assert fake_engine.index.generation == 2
    assert str(saved.memory.id) in fake_index.records
    report = await fake_engine.index.check()
    assert not report.drift, report.as_dict()


async def test_reindex_drops_the_vector_of_a_forget_in_flight(
    fake_engine: MemoryEngine,
    fake_index: InMemoryVectorIndex,
    alice: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    saved = await fake_engine.writes.save_many(
        space_id=alice, texts=[f"fact {i}" for i in range(5)]
    )
    gone = saved[0].memory.id
    pause = Pause(fake_index, "delete", monkeypatch)
    pause.arm()
    forgetting = asyncio.create_task(fake_engine.writes.forget(space_id=alice, memory_id=gone))
    await asyncio.wait_for(pause.landed.wait(), LIMIT_S)  # its row is still there for others
    reindexing = asyncio.create_task(fake_engine.index.reindex())
    await run_alongside(reindexing)
    pause.release()
    await asyncio.wait_for(forgetting, LIMIT_S)
    await asyncio.wait_for(reindexing, LIMIT_S)
    assert fake_engine.index.generation == 2
    assert str(gone) not in fake_index.records
    assert len(fake_index.records) == 4
    report = await fake_engine.index.check()
    assert not report.drift, report.as_dict()
