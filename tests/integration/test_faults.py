"""The fault matrix on real Chroma: save, edit and forget, each step broken, stores still agree.

The full matrix (also save_many and forget_all, and a compensation that fails once) runs on
fakes in tests/unit/test_fault_matrix.py. This smaller one keeps the real adapter honest:
each named step (FLUSH, VECTOR_WRITE, COMMIT, COMPENSATION) broken for save, edit and forget,
a Chroma write that lands but reports an error, and an edit's old vector restored in Chroma.
A failed Chroma write is VectorWriteFailed even when its undo fails too (Chroma down):
CompensationFailed only follows a commit failure whose undo failed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from engine.app import MemoryEngine
from engine.errors import CommitFailed, CompensationFailed, VectorWriteFailed
from engine.faults import Faults, Step
from storage.vector_types import VectorRecord, VectorRef
from tests.unit.fault_kit import EXPECTED, OPS, WRITE_STEPS, assert_agree, seed, snapshot

REAL_OPS = ["save", "edit", "forget"]


@pytest.mark.parametrize("op", REAL_OPS)
@pytest.mark.parametrize("step", WRITE_STEPS)
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


@pytest.mark.parametrize("op", REAL_OPS)
async def test_lost_compensation_after_a_failed_commit_is_typed_and_repairable(
    engine: MemoryEngine, faults: Faults, reopen: Any, op: str
) -> None:
    ids = await seed(engine)
    before_rows, _ = await snapshot(engine, 1)
    faults.fail(Step.COMMIT)
    faults.fail(Step.COMPENSATION, times=99)
    with pytest.raises(CompensationFailed) as caught:
        await OPS[op](engine, ids)
    assert caught.value.ids
    assert (await engine.index.check()).drift
    faults.fail(Step.COMPENSATION, times=0)
    await engine.index.repair(ids=caught.value.ids)
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


@pytest.mark.parametrize("op", REAL_OPS)
async def test_vector_write_that_applied_but_failed_is_undone(
    engine: MemoryEngine, reopen: Any, op: str
) -> None:
    ids = await seed(engine)
    before = await snapshot(engine, 1)
    real = engine.stores.vectors
    engine.stores.vectors = ApplyThenFail(real)  # type: ignore[assignment]
    with pytest.raises(VectorWriteFailed):
        await OPS[op](engine, ids)
    engine.stores.vectors = real
    assert await snapshot(engine, 1) == before
    await assert_agree(reopen, 1)


@pytest.mark.parametrize("op", REAL_OPS)
async def test_write_that_applied_but_failed_and_whose_undo_failed_is_a_vector_write_failure(
    engine: MemoryEngine, faults: Faults, reopen: Any, op: str
) -> None:
    ids = await seed(engine)
    before = await snapshot(engine, 1)
    real = engine.stores.vectors
    engine.stores.vectors = ApplyThenFail(real)  # type: ignore[assignment]
    faults.fail(Step.COMPENSATION, times=99)
    with pytest.raises(VectorWriteFailed) as caught:
        await OPS[op](engine, ids)
    engine.stores.vectors = real
    assert isinstance(caught.value.__cause__, ConnectionError)
    assert (await snapshot(engine, 1))[0] == before[0]  # SQL: nothing was written
    assert (await engine.index.check()).drift  # what the write left, until the sweep
    faults.fail(Step.COMPENSATION, times=0)
    await engine.index.sweep(grace_s=0)
    assert await snapshot(engine, 1) == before
    await assert_agree(reopen, 1)


class Down:
    """Chroma stopped: every call fails, as with `chroma run` killed."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def upsert(self, records: Sequence[VectorRecord]) -> None:
        raise ConnectionError("chroma is down")

    async def delete(self, refs: Sequence[VectorRef]) -> None:
        raise ConnectionError("chroma is down")

    async def fetch(self, refs: Sequence[VectorRef]) -> list[VectorRecord]:
        raise ConnectionError("chroma is down")


@pytest.mark.parametrize("op", REAL_OPS)
async def test_chroma_down_is_a_vector_write_failure_and_changes_nothing(
    engine: MemoryEngine, reopen: Any, op: str
) -> None:
    ids = await seed(engine)
    before = await snapshot(engine, 1)
    real = engine.stores.vectors
    engine.stores.vectors = Down(real)  # type: ignore[assignment]
    with pytest.raises(VectorWriteFailed):
        await OPS[op](engine, ids)
    engine.stores.vectors = real
    assert await snapshot(engine, 1) == before
    await assert_agree(reopen, 1)


async def test_edit_commit_failure_restores_the_old_vector(
    engine: MemoryEngine, faults: Faults
) -> None:
    ids = await seed(engine)
    faults.fail(Step.COMMIT)
    with pytest.raises(CommitFailed):
        await engine.writes.edit(space_id=1, memory_id=ids[0], text="somewhere else entirely")
    hits = await engine.reads.recall(space_id=1, query="where is my passport")
    assert hits[0].memory.id == ids[0]
    assert hits[0].memory.text == "my passport is in the blue drawer"
    assert not (await engine.index.check(space_id=1)).stale
