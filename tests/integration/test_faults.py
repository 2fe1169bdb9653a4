"""Fault matrix: each write path x each protocol step fails → SQL and Chroma still agree."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import pytest

from engine.app import MemoryEngine
from engine.errors import (
    CommitFailed,
    CompensationFailed,
    SqlWriteFailed,
    VectorWriteFailed,
    WriteFailed,
)
from engine.uow import Faults, Step
from storage.vector_types import VectorRecord, VectorRef

Op = Callable[[MemoryEngine, list[uuid.UUID]], Awaitable[Any]]
OPS: dict[str, Op] = {
    "save": lambda e, ids: e.memories.save(user_id=1, text="the spare key is under the mat"),
    "save_many": lambda e, ids: e.memories.save_many(
        user_id=1, texts=[f"bulk memory number {i}" for i in range(150)]
    ),
    "edit": lambda e, ids: e.memories.edit(user_id=1, memory_id=ids[0], text="changed text"),
    "forget": lambda e, ids: e.memories.forget(user_id=1, memory_id=ids[0]),
    "forget_all": lambda e, ids: e.memories.forget_all(user_id=1),
}
EXPECTED: dict[Step, type[WriteFailed]] = {
    Step.FLUSH: SqlWriteFailed,
    Step.VECTOR_WRITE: VectorWriteFailed,
    Step.COMMIT: CommitFailed,
}


async def seed(engine: MemoryEngine) -> list[uuid.UUID]:
    for user_id in (1, 2):
        await engine.users.register(user_id=user_id)
    mine = await engine.memories.save_many(
        user_id=1, texts=["my passport is in the blue drawer", "buy oat milk", "dentist friday"]
    )
    await engine.memories.save(user_id=2, text="user two keeps this")
    return [result.memory.id for result in mine]


async def snapshot(engine: MemoryEngine, user_id: int) -> tuple[dict[str, str], set[str]]:
    """(SQL id → text, Chroma ids) for one user."""
    page = await engine.memories.list(user_id=user_id, limit=1000)
    vectors = await engine.memories.vectors.scan(user_id)
    return {str(m.id): m.text for m in page.items}, {v.id for v in vectors}


async def assert_agree(reopen: Callable[[], Awaitable[MemoryEngine]], user_id: int) -> None:
    fresh = await reopen()  # fresh sessions, fresh Chroma client
    rows, vectors = await snapshot(fresh, user_id)
    assert set(rows) == vectors
    report = await fresh.memories.check()
    assert not report.drift, report.as_dict()


@pytest.mark.parametrize("op", list(OPS))
@pytest.mark.parametrize("step", [Step.FLUSH, Step.VECTOR_WRITE, Step.COMMIT])
async def test_failing_step_leaves_both_stores_unchanged(
    engine: MemoryEngine, faults: Faults, reopen: Any, op: str, step: Step
) -> None:
    ids = await seed(engine)
    before = await snapshot(engine, 1)
    faults.fail(step)
    with pytest.raises(EXPECTED[step]):
        await OPS[op](engine, ids)
    assert await snapshot(engine, 1) == before
    assert (await snapshot(engine, 2))[0]
    await assert_agree(reopen, 1)


@pytest.mark.parametrize("op", list(OPS))
async def test_compensation_that_fails_once_is_retried(
    engine: MemoryEngine, faults: Faults, reopen: Any, op: str
) -> None:
    ids = await seed(engine)
    before = await snapshot(engine, 1)
    faults.fail(Step.COMMIT)
    faults.fail(Step.COMPENSATION, times=1)
    with pytest.raises(CommitFailed):
        await OPS[op](engine, ids)
    assert await snapshot(engine, 1) == before
    await assert_agree(reopen, 1)


@pytest.mark.parametrize("op", list(OPS))
async def test_lost_compensation_is_typed_and_repairable(
    engine: MemoryEngine, faults: Faults, reopen: Any, op: str
) -> None:
    ids = await seed(engine)
    before_rows, _ = await snapshot(engine, 1)
    faults.fail(Step.COMMIT)
    faults.fail(Step.COMPENSATION, times=99)
    with pytest.raises(CompensationFailed) as caught:
        await OPS[op](engine, ids)
    assert caught.value.ids
    assert (await engine.memories.check()).drift
    faults.fail(Step.COMPENSATION, times=0)
    await engine.memories.repair(ids=caught.value.ids)
    rows, _ = await snapshot(engine, 1)
    assert rows == before_rows
    await assert_agree(reopen, 1)


class ApplyThenFail:
    """A vector store whose writes land in Chroma and then report an error (a lost reply)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.armed = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def upsert(self, records: Sequence[VectorRecord]) -> None:
        await self.inner.upsert(records)
        self._maybe_fail()

    async def delete(self, refs: Sequence[VectorRef]) -> None:
        await self.inner.delete(refs)
        self._maybe_fail()

    def _maybe_fail(self) -> None:
        if self.armed:
            self.armed = False
            raise ConnectionError("reply lost after the write was applied")


@pytest.mark.parametrize("op", list(OPS))
async def test_vector_write_that_applied_but_failed_is_undone(
    engine: MemoryEngine, reopen: Any, op: str
) -> None:
    ids = await seed(engine)
    before = await snapshot(engine, 1)
    real = engine.memories.vectors
    engine.memories.vectors = ApplyThenFail(real)  # type: ignore[assignment]
    with pytest.raises(VectorWriteFailed):
        await OPS[op](engine, ids)
    engine.memories.vectors = real
    assert await snapshot(engine, 1) == before
    await assert_agree(reopen, 1)


async def test_edit_commit_failure_restores_the_old_vector(
    engine: MemoryEngine, faults: Faults
) -> None:
    ids = await seed(engine)
    faults.fail(Step.COMMIT)
    with pytest.raises(CommitFailed):
        await engine.memories.edit(user_id=1, memory_id=ids[0], text="somewhere else entirely")
    hits = await engine.memories.recall(user_id=1, query="where is my passport")
    assert hits[0].memory.id == ids[0]
    assert hits[0].memory.text == "my passport is in the blue drawer"
    assert not (await engine.memories.check(user_id=1)).stale
