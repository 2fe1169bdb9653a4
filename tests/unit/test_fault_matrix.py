"""The full fault matrix on fakes (both databases): every write path x every named step.

Each of save, save_many, edit, forget and forget_all is broken at FLUSH, VECTOR_WRITE and
COMMIT, with a compensation that fails once (retried) or for good (typed, then repaired), and
with a vector write that lands but reports an error. Afterwards SQL and the index agree, and
the index holds exactly the records it held before (embeddings included). A vector write that
fails is VectorWriteFailed even when its undo fails too (the vector store is down): SQL is
unchanged, and whatever the write left is drift the sweep repairs.
tests/integration/test_faults.py repeats the steps for save, edit and forget on real Chroma.
"""

from __future__ import annotations

import pytest

from engine.app import MemoryEngine
from engine.errors import CommitFailed, CompensationFailed, VectorWriteFailed
from engine.faults import Faults, Step
from tests.fakes.vector_index import InMemoryVectorIndex
from tests.unit.conftest import Reopen
from tests.unit.fault_kit import EXPECTED, OPS, WRITE_STEPS, assert_agree, seed, snapshot

Stored = dict[str, tuple[int, str, bytes]]
VECTOR_CALL = {  # the index method each path writes with
    "save": "upsert",
    "save_many": "upsert",
    "edit": "upsert",
    "forget": "delete",
    "forget_all": "delete",
}


def stored(index: InMemoryVectorIndex) -> Stored:
    """Everything the fake holds: id → (owner, digest, embedding bytes)."""
    return {
        id_: (record.space_id, record.digest, record.embedding.tobytes())
        for id_, record in index.records.items()
    }


@pytest.mark.parametrize("op", list(OPS))
@pytest.mark.parametrize("step", WRITE_STEPS)
async def test_failing_step_leaves_both_stores_unchanged(
    fake_engine: MemoryEngine,
    fake_index: InMemoryVectorIndex,
    faults: Faults,
    reopen_fake: Reopen,
    op: str,
    step: Step,
) -> None:
    ids = await seed(fake_engine)
    before, held = await snapshot(fake_engine, 1), stored(fake_index)
    faults.fail(step)
    with pytest.raises(EXPECTED[step]):
        await OPS[op](fake_engine, ids)
    assert await snapshot(fake_engine, 1) == before
    assert stored(fake_index) == held
    assert (await snapshot(fake_engine, 2))[0]
    await assert_agree(reopen_fake, 1)


@pytest.mark.parametrize("op", list(OPS))
async def test_compensation_that_fails_once_is_retried(
    fake_engine: MemoryEngine,
    fake_index: InMemoryVectorIndex,
    faults: Faults,
    reopen_fake: Reopen,
    op: str,
) -> None:
    ids = await seed(fake_engine)
    before, held = await snapshot(fake_engine, 1), stored(fake_index)
    faults.fail(Step.COMMIT)
    faults.fail(Step.COMPENSATION, times=1)
    with pytest.raises(CommitFailed):
        await OPS[op](fake_engine, ids)
    assert await snapshot(fake_engine, 1) == before
    assert stored(fake_index) == held
    await assert_agree(reopen_fake, 1)


@pytest.mark.parametrize("op", list(OPS))
async def test_lost_compensation_after_a_failed_commit_is_typed_and_repairable(
    fake_engine: MemoryEngine, faults: Faults, reopen_fake: Reopen, op: str
) -> None:
    ids = await seed(fake_engine)
    before_rows, _ = await snapshot(fake_engine, 1)
    faults.fail(Step.COMMIT)
    faults.fail(Step.COMPENSATION, times=99)
    with pytest.raises(CompensationFailed) as caught:
        await OPS[op](fake_engine, ids)
    assert caught.value.ids
    assert (await fake_engine.index.check()).drift
    faults.fail(Step.COMPENSATION, times=0)
    await fake_engine.index.repair(ids=caught.value.ids)
    rows, _ = await snapshot(fake_engine, 1)
    assert rows == before_rows
    await assert_agree(reopen_fake, 1)


@pytest.mark.parametrize("op", list(OPS))
async def test_vector_write_that_applied_but_failed_is_undone(
    fake_engine: MemoryEngine, fake_index: InMemoryVectorIndex, reopen_fake: Reopen, op: str
) -> None:
    ids = await seed(fake_engine)
    before, held = await snapshot(fake_engine, 1), stored(fake_index)
    fake_index.fail_after_apply = True  # the write lands, then its reply is lost
    fake_index.fail_next.add(VECTOR_CALL[op])
    with pytest.raises(VectorWriteFailed):
        await OPS[op](fake_engine, ids)
    assert not fake_index.fail_next  # the failure was really hit
    assert await snapshot(fake_engine, 1) == before
    assert stored(fake_index) == held
    await assert_agree(reopen_fake, 1)


@pytest.mark.parametrize("op", list(OPS))
@pytest.mark.parametrize("landed", [False, True], ids=["refused", "landed"])
async def test_failed_vector_write_with_failed_undo_is_a_vector_write_failure(
    fake_engine: MemoryEngine,
    fake_index: InMemoryVectorIndex,
    faults: Faults,
    reopen_fake: Reopen,
    op: str,
    landed: bool,
) -> None:
    ids = await seed(fake_engine)
    before, held = await snapshot(fake_engine, 1), stored(fake_index)
    fake_index.fail_after_apply = landed  # landed: the write is applied, its reply lost
    fake_index.fail_next.add(VECTOR_CALL[op])
    faults.fail(Step.COMPENSATION, times=99)  # and the undo fails too
    with pytest.raises(VectorWriteFailed) as caught:
        await OPS[op](fake_engine, ids)
    assert caught.value.ids
    assert isinstance(caught.value.__cause__, ConnectionError)
    assert (await snapshot(fake_engine, 1))[0] == before[0]  # SQL: nothing was written
    assert (await fake_engine.index.check()).drift == landed
    faults.fail(Step.COMPENSATION, times=0)
    await fake_engine.index.sweep(grace_s=0)
    assert await snapshot(fake_engine, 1) == before
    assert stored(fake_index) == held
    await assert_agree(reopen_fake, 1)
