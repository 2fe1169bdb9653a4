"""engine.uow.UnitOfWork on real SQLite and a fake vector store: commit, rollback, write faults."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy.exc import IntegrityError

from engine.errors import AlreadyExists, SourceTaken, SqlWriteFailed, VectorWriteFailed
from engine.faults import Step
from engine.uow import UnitOfWork
from storage.db import Database
from storage.models import MemoryRow, UserRow
from tests.fakes.vector_index import InMemoryVectorIndex
from tests.unit.uow_kit import (
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
    db: Database, store: InMemoryVectorIndex, caplog: pytest.LogCaptureFixture
) -> None:
    memory_id = uuid.uuid4()
    uow = await run(db, store, saving(memory_id))
    assert uow.committed
    assert await rows(db) == [memory_id]
    assert await users(db) == 1
    assert list(store.records) == [str(memory_id)]
    assert outcomes(caplog) == ["committed"]


async def test_rolls_back_uncommitted_work_by_default(
    db: Database, store: InMemoryVectorIndex, caplog: pytest.LogCaptureFixture
) -> None:
    uow = await run(db, store, saving(uuid.uuid4()), commit=False)
    assert not uow.committed
    assert await rows(db) == []
    assert await users(db) == 0
    assert store.records == {}
    assert outcomes(caplog) == ["compensated"]


async def test_rolls_back_sql_only_work_without_touching_vectors(
    db: Database, store: InMemoryVectorIndex, caplog: pytest.LogCaptureFixture
) -> None:
    await run(db, store, adding_user(), commit=False, op="user")
    assert await users(db) == 0
    assert store.calls == []
    assert outcomes(caplog) == ["rolled_back"]


async def test_rolls_back_on_error(
    db: Database, store: InMemoryVectorIndex, caplog: pytest.LogCaptureFixture
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
    db: Database, store: InMemoryVectorIndex, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(SqlWriteFailed) as caught:
        await run(db, store, saving(uuid.uuid4()), faults=faults_at(Step.FLUSH))
    assert caught.value.step == "flush"
    assert isinstance(caught.value.__cause__, Exception)
    assert await rows(db) == []
    assert await users(db) == 0
    assert store.calls == []
    assert outcomes(caplog) == ["rolled_back"]


async def test_a_unique_violation_at_flush_becomes_already_exists(
    db: Database, store: InMemoryVectorIndex, caplog: pytest.LogCaptureFixture
) -> None:
    await seed(db, store)

    async def body(uow: UnitOfWork) -> None:
        adding = adding_user()
        await adding(uow)

    with pytest.raises(AlreadyExists) as caught:
        await run(db, store, body, op="user")
    assert isinstance(caught.value.__cause__, IntegrityError)
    assert await users(db) == 1
    assert outcomes(caplog) == ["committed", "rolled_back"]


async def test_a_unique_violation_left_for_the_commit_becomes_already_exists(
    db: Database, store: InMemoryVectorIndex
) -> None:
    await seed(db, store)

    async def body(uow: UnitOfWork) -> None:
        uow.session.add(UserRow(id=1))  # no explicit flush: the commit finds it

    with pytest.raises(AlreadyExists):
        await run(db, store, body, op="user")
    assert await users(db) == 1


async def test_a_taken_chat_message_becomes_source_taken(
    db: Database, store: InMemoryVectorIndex
) -> None:
    async def first(uow: UnitOfWork) -> None:
        uow.session.add(UserRow(id=1))
        await uow.flush()
        uow.session.add(MemoryRow(space_id=1, author_id=1, text="a", chat_id=5, message_id=6))

    async def second(uow: UnitOfWork) -> None:
        uow.session.add(MemoryRow(space_id=1, author_id=1, text="b", chat_id=5, message_id=6))
        await uow.flush()

    await run(db, store, first, op="seed")
    with pytest.raises(SourceTaken):
        await run(db, store, second)
    assert len(await rows(db)) == 1


@pytest.mark.parametrize("how", ["fault", "store_refuses", "store_applies_then_raises"])
async def test_failed_vector_write_leaves_no_vector_and_no_row(
    db: Database, store: InMemoryVectorIndex, caplog: pytest.LogCaptureFixture, how: str
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
    db: Database, store: InMemoryVectorIndex
) -> None:
    store.fail_next = {"fetch"}

    async def body(uow: UnitOfWork) -> None:
        await uow.upsert_vectors([record(uuid.uuid4())], replacing=True)

    with pytest.raises(VectorWriteFailed):
        await run(db, store, body, op="edit")
    assert [call[0] for call in store.calls] == ["fetch"]
    assert store.records == {}


async def test_track_names_each_id_once(db: Database, store: InMemoryVectorIndex) -> None:
    async with UnitOfWork(db.writes, store, op="t", faults=None) as uow:
        uow.track(["a", "b"])
        uow.track(["b", "c"])
    assert uow.ids == ["a", "b", "c"]
