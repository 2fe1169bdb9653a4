"""engine.uow.UnitOfWork when a write fails: vector writes are undone (or reported truly).

A commit that fails after a vector write succeeded must undo that write: if it cannot, that is
CompensationFailed. A vector write that fails is VectorWriteFailed whatever its undo does: the
undo is tried once, and if it fails too the outcome is logged as deferred to the sweep.
"""

from __future__ import annotations

import logging
import uuid

import pytest

from engine import uow as uow_module
from engine.errors import CommitFailed, CompensationFailed, VectorWriteFailed
from engine.faults import InjectedFault, Step
from engine.uow import UnitOfWork
from storage.db import Database
from storage.models import MemoryRow
from storage.vector_types import VectorRef
from tests.fakes.vector_index import InMemoryVectorIndex
from tests.unit.uow_kit import (
    adding_user,
    faults_at,
    outcomes,
    record,
    rows,
    run,
    same,
    saving,
    seed,
    users,
)


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch, tx_log: None) -> None:
    monkeypatch.setattr(uow_module, "COMPENSATION_BACKOFF_S", 0.0)


async def test_commit_fault_removes_the_vector_by_compensation(
    db: Database, store: InMemoryVectorIndex, caplog: pytest.LogCaptureFixture
) -> None:
    memory_id = uuid.uuid4()
    with pytest.raises(CommitFailed) as caught:
        await run(db, store, saving(memory_id), faults=faults_at(Step.COMMIT))
    assert caught.value.step == "commit"
    assert caught.value.ids == [str(memory_id)]
    assert ("delete", [str(memory_id)]) in store.calls
    assert await rows(db) == []
    assert store.records == {}
    assert outcomes(caplog) == ["compensated"]


async def test_commit_fault_without_vector_writes_is_a_plain_rollback(
    db: Database, store: InMemoryVectorIndex, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(CommitFailed):
        await run(db, store, adding_user(), faults=faults_at(Step.COMMIT), op="user")
    assert await users(db) == 0
    assert store.calls == []
    assert outcomes(caplog) == ["rolled_back"]


@pytest.mark.parametrize("how", ["fault", "store_refuses", "store_applies_then_raises"])
async def test_compensation_is_retried_until_the_stores_agree(
    db: Database, store: InMemoryVectorIndex, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    faults = faults_at(Step.COMMIT, compensation=1 if how == "fault" else 0)
    if how != "fault":
        store.fail_next = {"delete"}
        store.fail_after_apply = how == "store_applies_then_raises"
    memory_id = uuid.uuid4()
    with pytest.raises(CommitFailed):
        await run(db, store, saving(memory_id), faults=faults)
    deletes = [call for call in store.calls if call[0] == "delete"]
    assert len(deletes) == (1 if how == "fault" else 2)
    faults.check(Step.COMPENSATION)  # the planned failure was used up: no raise
    assert await rows(db) == []
    assert store.records == {}
    assert outcomes(caplog) == ["compensated"]


async def test_compensation_failing_every_attempt_names_the_ids(
    db: Database, store: InMemoryVectorIndex, caplog: pytest.LogCaptureFixture
) -> None:
    attempts = uow_module.COMPENSATION_ATTEMPTS
    faults = faults_at(Step.COMMIT, compensation=attempts)
    memory_id = uuid.uuid4()
    with pytest.raises(CompensationFailed) as caught:
        await run(db, store, saving(memory_id), faults=faults)
    assert caught.value.ids == [str(memory_id)]
    assert "needs repair" in str(caught.value)
    assert await rows(db) == []
    assert list(store.records) == [str(memory_id)]  # the orphan the sweep must repair
    assert outcomes(caplog) == ["compensation_failed"]
    failed = [r for r in caplog.records if "compensation_failed" in r.getMessage()]
    assert failed[0].levelno == logging.ERROR
    assert str(memory_id) in failed[0].getMessage()


async def test_delete_vectors_is_undone_when_the_commit_fails(
    db: Database, store: InMemoryVectorIndex, caplog: pytest.LogCaptureFixture
) -> None:
    memory_id = await seed(db, store)
    before = store.records[str(memory_id)]

    async def body(uow: UnitOfWork) -> None:
        await uow.session.delete(await uow.session.get(MemoryRow, memory_id))
        await uow.flush()
        await uow.delete_vectors([VectorRef(str(memory_id), 1)])
        assert store.records == {}

    with pytest.raises(CommitFailed):
        await run(db, store, body, faults=faults_at(Step.COMMIT), op="delete")
    assert await rows(db) == [memory_id]
    assert same(store.records[str(memory_id)], before)
    assert outcomes(caplog) == ["committed", "compensated"]


async def test_replacing_upsert_restores_the_previous_vector_when_the_commit_fails(
    db: Database, store: InMemoryVectorIndex, caplog: pytest.LogCaptureFixture
) -> None:
    old_id = await seed(db, store)
    before = store.records[str(old_id)]
    new_id = uuid.uuid4()

    async def body(uow: UnitOfWork) -> None:
        uow.session.add(MemoryRow(id=new_id, space_id=1, author_id=1, text="new"))
        await uow.flush()
        changed = [record(old_id, value=0.9, digest="d2"), record(new_id)]
        await uow.upsert_vectors(changed, replacing=True)
        assert not same(store.records[str(old_id)], before)

    with pytest.raises(CommitFailed) as caught:
        await run(db, store, body, faults=faults_at(Step.COMMIT), op="edit")
    assert caught.value.ids == [str(old_id), str(new_id)]
    assert list(store.records) == [str(old_id)]  # the new vector is gone, the old one back
    assert same(store.records[str(old_id)], before)
    assert await rows(db) == [old_id]
    assert outcomes(caplog) == ["committed", "compensated"]


async def test_every_vector_write_is_undone_newest_first(
    db: Database, store: InMemoryVectorIndex, caplog: pytest.LogCaptureFixture
) -> None:
    first, second = uuid.uuid4(), uuid.uuid4()

    async def body(uow: UnitOfWork) -> None:
        await saving(first)(uow)
        await saving(second, user=False)(uow)

    with pytest.raises(CommitFailed) as caught:
        await run(db, store, body, faults=faults_at(Step.COMMIT))
    assert caught.value.ids == [str(first), str(second)]
    undo = [call for call in store.calls if call[0] == "delete"]
    assert undo == [("delete", [str(second)]), ("delete", [str(first)])]
    assert store.records == {}
    assert outcomes(caplog) == ["compensated"]


def deferred_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "compensation=deferred" in r.getMessage()]


@pytest.mark.parametrize("landed", [False, True], ids=["refused", "landed"])
async def test_vector_write_whose_undo_fails_too_is_a_vector_write_failure(
    db: Database, store: InMemoryVectorIndex, caplog: pytest.LogCaptureFixture, landed: bool
) -> None:
    store.fail_next = {"upsert"}  # the vector store is down: the write fails...
    store.fail_after_apply = landed  # ...before or after it landed (a lost reply)
    memory_id = uuid.uuid4()
    with pytest.raises(VectorWriteFailed) as caught:
        await run(db, store, saving(memory_id), faults=faults_at(compensation=1))  # undo too
    assert caught.value.ids == [str(memory_id)]
    assert isinstance(caught.value.__cause__, ConnectionError)
    assert await rows(db) == []  # SQL was rolled back: nothing was saved
    assert list(store.records) == ([str(memory_id)] if landed else [])  # at worst an orphan
    assert [call[0] for call in store.calls] == ["upsert"]  # one undo attempt, no retry
    assert outcomes(caplog) == ["rolled_back"]
    [line] = deferred_lines(caplog)
    assert line.levelno == logging.WARNING
    assert str(memory_id) in line.getMessage()
    assert "error=InjectedFault" in line.getMessage()
    assert "buy milk" not in caplog.text


async def test_vector_store_down_for_write_and_undo_is_a_vector_write_failure(
    db: Database, store: InMemoryVectorIndex, caplog: pytest.LogCaptureFixture
) -> None:
    store.fail_next = {"upsert", "delete"}  # Chroma stopped: every call fails
    with pytest.raises(VectorWriteFailed):
        await run(db, store, saving(uuid.uuid4()))
    assert [call[0] for call in store.calls] == ["upsert", "delete"]
    assert await rows(db) == []
    assert store.records == {}
    assert outcomes(caplog) == ["rolled_back"]
    assert len(deferred_lines(caplog)) == 1


async def test_an_earlier_write_that_cannot_be_undone_is_still_compensation_failed(
    db: Database, store: InMemoryVectorIndex, caplog: pytest.LogCaptureFixture
) -> None:
    first, second = uuid.uuid4(), uuid.uuid4()

    async def body(uow: UnitOfWork) -> None:
        await saving(first)(uow)  # this vector write succeeds
        store.fail_next = {"upsert"}
        await saving(second, user=False)(uow)  # this one fails

    faults = faults_at(compensation=1 + uow_module.COMPENSATION_ATTEMPTS)
    with pytest.raises(CompensationFailed) as caught:
        await run(db, store, body, faults=faults)
    assert caught.value.ids == [str(first), str(second)]
    assert isinstance(caught.value.__cause__, InjectedFault)
    assert await rows(db) == []
    assert list(store.records) == [str(first)]
    assert outcomes(caplog) == ["compensation_failed"]
