"""Helpers for the unit-of-work tests: bodies to run in a unit of work, SQL probes."""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from engine.faults import Faults, Step
from engine.uow import UnitOfWork
from storage.db import Database, open_database
from storage.migrate import upgrade
from storage.models import MemoryRow, UserRow
from storage.vector_types import VectorRecord
from tests.fakes.vector_index import InMemoryVectorIndex

Body = Callable[[UnitOfWork], Awaitable[None]]


class Abandoned(Exception):
    """Leaves a unit of work without committing (a caller that changed its mind)."""


def record(memory_id: uuid.UUID, value: float = 0.5, digest: str = "d1") -> VectorRecord:
    embedding = np.full(384, value, dtype=np.float32)
    return VectorRecord(str(memory_id), 1, embedding, created_at=0, digest=digest)


def same(a: VectorRecord, b: VectorRecord) -> bool:
    return a.ref == b.ref and a.digest == b.digest and np.array_equal(a.embedding, b.embedding)


def faults_at(*steps: Step, compensation: int = 0) -> Faults:
    faults = Faults()
    for step in steps:
        faults.fail(step)
    if compensation:
        faults.fail(Step.COMPENSATION, times=compensation)
    return faults


def outcomes(caplog: pytest.LogCaptureFixture) -> list[str]:
    lines = [r.getMessage() for r in caplog.records if r.name == "memorybot.tx"]
    return [m.group(1) for line in lines if (m := re.search(r"outcome=(\w+)", line))]


async def rows(db: Database) -> list[uuid.UUID]:
    async with db.reads() as session:
        return list((await session.scalars(select(MemoryRow.id))).all())


async def users(db: Database) -> int:
    async with db.reads() as session:
        return int(await session.scalar(select(func.count()).select_from(UserRow)) or 0)


def saving(memory_id: uuid.UUID, *, user: bool = True) -> Body:
    """Add a user (optionally) and one memory, flush, and store the memory's vector."""

    async def body(uow: UnitOfWork) -> None:
        if user:
            uow.session.add(UserRow(id=1))
            await uow.flush()
        uow.session.add(MemoryRow(id=memory_id, space_id=1, author_id=1, text="buy milk"))
        await uow.flush()
        await uow.upsert_vectors([record(memory_id)], replacing=False)

    return body


def adding_user() -> Body:
    async def body(uow: UnitOfWork) -> None:
        uow.session.add(UserRow(id=1))
        await uow.flush()

    return body


async def run(
    db: Database,
    store: InMemoryVectorIndex,
    body: Body,
    *,
    faults: Faults | None = None,
    commit: bool = True,
    op: str = "save",
) -> UnitOfWork:
    """Run `body` in a unit of work; `commit=False` leaves the block by an exception."""
    uow = UnitOfWork(db.writes, store, op=op, faults=faults)
    with contextlib.suppress(Abandoned):
        async with uow:
            await body(uow)
            _abandon_unless(commit)
    return uow


def _abandon_unless(commit: bool) -> None:
    if not commit:
        raise Abandoned()


async def open_test_db(path: Path) -> Database:
    """A migrated SQLite database in `path`."""
    database = open_database(f"sqlite+aiosqlite:///{path}/u.db")
    await upgrade(database.write_engine)
    return database


async def seed(db: Database, store: InMemoryVectorIndex) -> uuid.UUID:
    memory_id = uuid.uuid4()
    await run(db, store, saving(memory_id), op="seed")
    return memory_id
