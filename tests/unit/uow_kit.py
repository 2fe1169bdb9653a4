"""Test doubles and helpers for the unit-of-work tests (a fake vector store, SQL probes)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from engine.uow import Faults, Step, UnitOfWork
from storage.db import Database, open_database
from storage.migrate import upgrade
from storage.models import MemoryRow, UserRow
from storage.vector_types import VectorRecord, VectorRef

Body = Callable[[UnitOfWork], Awaitable[None]]


class FakeVectors:
    """Records every call; a method named in `fail_next` fails once (after applying, if asked)."""

    def __init__(self) -> None:
        self.records: dict[str, VectorRecord] = {}
        self.calls: list[tuple[str, list[str]]] = []
        self.fail_next: set[str] = set()
        self.fail_after_apply = False

    def _call(self, method: str, ids: list[str]) -> bool:
        self.calls.append((method, ids))
        if method not in self.fail_next:
            return False
        self.fail_next.discard(method)
        if not self.fail_after_apply:
            raise ConnectionError(f"fake {method} failed")
        return True

    async def upsert(self, records: Sequence[VectorRecord]) -> None:
        fail_after = self._call("upsert", [r.id for r in records])
        self.records.update({r.id: r for r in records})
        if fail_after:
            raise ConnectionError("fake upsert failed after applying")

    async def delete(self, refs: Sequence[VectorRef]) -> None:
        fail_after = self._call("delete", [r.id for r in refs])
        for ref in refs:
            self.records.pop(ref.id, None)
        if fail_after:
            raise ConnectionError("fake delete failed after applying")

    async def fetch(self, refs: Sequence[VectorRef]) -> list[VectorRecord]:
        self._call("fetch", [r.id for r in refs])
        return [self.records[r.id] for r in refs if r.id in self.records]


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
        uow.session.add(MemoryRow(id=memory_id, user_id=1, text="buy milk"))
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
    store: FakeVectors,
    body: Body,
    *,
    faults: Faults | None = None,
    commit: bool = True,
    op: str = "save",
) -> UnitOfWork:
    async with UnitOfWork(db.writes, store, op=op, faults=faults) as uow:
        await body(uow)
        if commit:
            await uow.commit()
    return uow


async def open_test_db(path: Path) -> Database:
    """A migrated SQLite database in `path`."""
    database = open_database(f"sqlite+aiosqlite:///{path}/u.db")
    await upgrade(database.write_engine)
    return database


async def seed(db: Database, store: FakeVectors) -> uuid.UUID:
    memory_id = uuid.uuid4()
    await run(db, store, saving(memory_id), op="seed")
    return memory_id
