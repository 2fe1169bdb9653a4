"""engine.uow.UnitOfWork on real SQLite and a fake vector store: commit, rollback, write faults."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy.exc import IntegrityError

from engine.errors import SqlWriteFailed, VectorWriteFailed
from engine.uow import Step, UnitOfWork
from storage.db import Database
from tests.unit.fake_vectors import (
    FakeVectors,
    adding_user,
    faults_at,
    outcomes,
    record,
    rows,
    run,
    saving,
    seed,
    users,
)

pytestmark = pytest.mark.usefixtures("tx_log")


async def test_commit_makes_rows_and_vectors_visible(
    db: Database, store: FakeVectors, caplog: pytest.LogCaptureFixture
) -> None:
    memory_id = uuid.uuid4()
    uow = await run(db, store, saving(memory_id))
    assert uow.committed
    assert await rows(db) == [memory_id]
    assert await users(db) == 1
    assert list(store.records) == [str(memory_id)]
    assert outcomes(caplog) == ["committed"]


async def test_rolls_back_uncommitted_work_by_default(
    db: Database, store: FakeVectors, caplog: pytest.LogCaptureFixture
) -> None:
    uow = await run(db, store, saving(uuid.uuid4()), commit=False)
    assert not uow.committed
    assert await rows(db) == []
    assert await users(db) == 0
    assert store.records == {}
    assert outcomes(caplog) == ["compensated"]


async def test_rolls_back_sql_only_work_without_touching_vectors(
    db: Database, store: FakeVectors, caplog: pytest.LogCaptureFixture
) -> None:
    await run(db, store, adding_user(), commit=False, op="user")
    assert await users(db) == 0
    assert store.calls == []
    assert outcomes(caplog) == ["rolled_back"]


async def test_rolls_back_on_error(
    db: Database, store: FakeVectors, caplog: pytest.LogCaptureFixture
) -> None:
    memory_id = uuid.uuid4()

    async def body(uow: UnitOfWork) -> None:
        await saving(memory_id)(uow)
        raise KeyError("caller bug")

    with pytest.raises(KeyError, match="caller bug"):
        await run(db, store, body)
    assert await rows(db) == []
    assert await users(db) == 0
    assert store.records == {}
    assert ("delete", [str(memory_id)]) in store.calls
    assert outcomes(caplog) == ["compensated"]


async def test_flush_fault_raises_sql_write_failed_and_writes_nothing(
    db: Database, store: FakeVectors, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(SqlWriteFailed) as caught:
        await run(db, store, saving(uuid.uuid4()), faults=faults_at(Step.FLUSH))
    assert caught.value.step == "flush"
    assert isinstance(caught.value.__cause__, Exception)
    assert await rows(db) == []
    assert await users(db) == 0
    assert store.calls == []
    assert outcomes(caplog) == ["rolled_back"]


async def test_integrity_errors_pass_through_flush_unwrapped(
    db: Database, store: FakeVectors, caplog: pytest.LogCaptureFixture
) -> None:
    await seed(db, store)
    with pytest.raises(IntegrityError):
        await run(db, store, adding_user(), op="user")
    assert await users(db) == 1
    assert outcomes(caplog) == ["committed", "rolled_back"]


@pytest.mark.parametrize("how", ["fault", "store_refuses", "store_applies_then_raises"])
async def test_failed_vector_write_leaves_no_vector_and_no_row(
    db: Database, store: FakeVectors, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    faults = faults_at(Step.VECTOR_WRITE) if how == "fault" else None
    if how != "fault":
        store.fail_next = {"upsert"}
        store.fail_after_apply = how == "store_applies_then_raises"
    memory_id = uuid.uuid4()
    with pytest.raises(VectorWriteFailed) as caught:
        await run(db, store, saving(memory_id), faults=faults)
    assert caught.value.step == "vector_write"
    assert caught.value.ids == [str(memory_id)]
    assert await rows(db) == []
    assert store.records == {}
    assert outcomes(caplog) == ["compensated"]


async def test_a_failed_fetch_before_replacing_is_a_vector_write_failure(
    db: Database, store: FakeVectors
) -> None:
    store.fail_next = {"fetch"}

    async def body(uow: UnitOfWork) -> None:
        await uow.upsert_vectors([record(uuid.uuid4())], replacing=True)

    with pytest.raises(VectorWriteFailed):
        await run(db, store, body, op="edit")
    assert [call[0] for call in store.calls] == ["fetch"]
    assert store.records == {}


async def test_track_names_each_id_once(db: Database, store: FakeVectors) -> None:
    async with UnitOfWork(db.writes, store, op="t") as uow:
        uow.track(["a", "b"])
        uow.track(["b", "c"])
    assert uow.ids == ["a", "b", "c"]
