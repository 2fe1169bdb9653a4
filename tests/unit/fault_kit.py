"""The fault matrix's write paths, seed data and agreement checks, for both tiers.

tests/unit/test_fault_matrix.py runs every path against every step on fakes;
tests/integration/test_faults.py runs save, edit and forget against real Chroma.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from engine.app import MemoryEngine
from engine.errors import CommitFailed, SqlWriteFailed, VectorWriteFailed, WriteFailed
from engine.faults import Step

Op = Callable[[MemoryEngine, list[uuid.UUID]], Awaitable[Any]]
OPS: dict[str, Op] = {
    "save": lambda e, ids: e.writes.save(space_id=1, text="the spare key is under the mat"),
    "save_many": lambda e, ids: e.writes.save_many(
        space_id=1, texts=[f"bulk memory number {i}" for i in range(150)]
    ),
    "edit": lambda e, ids: e.writes.edit(space_id=1, memory_id=ids[0], text="changed text"),
    "forget": lambda e, ids: e.writes.forget(space_id=1, memory_id=ids[0]),
    "forget_all": lambda e, ids: e.writes.forget_all(space_id=1),
}
WRITE_STEPS = [Step.FLUSH, Step.VECTOR_WRITE, Step.COMMIT]
EXPECTED: dict[Step, type[WriteFailed]] = {
    Step.FLUSH: SqlWriteFailed,
    Step.VECTOR_WRITE: VectorWriteFailed,
    Step.COMMIT: CommitFailed,
}


async def seed(engine: MemoryEngine) -> list[uuid.UUID]:
    """Users 1 and 2; three memories of user 1 (their ids returned) and one of user 2."""
    for user_id in (1, 2):
        await engine.users.register(user_id=user_id)
    mine = await engine.writes.save_many(
        space_id=1, texts=["my passport is in the blue drawer", "buy oat milk", "dentist friday"]
    )
    await engine.writes.save(space_id=2, text="user two keeps this")
    return [result.memory.id for result in mine]


async def snapshot(engine: MemoryEngine, user_id: int) -> tuple[dict[str, str], set[str]]:
    """(SQL id → text, vector ids) for one user."""
    page = await engine.reads.page(space_id=user_id, limit=1000)
    vectors = await engine.stores.vectors.scan(user_id)
    return {str(m.id): m.text for m in page.items}, {v.id for v in vectors}


async def assert_agree(reopen: Callable[[], Awaitable[MemoryEngine]], user_id: int) -> None:
    """A fresh engine (fresh sessions) sees SQL and the index agree, without drift."""
    fresh = await reopen()
    rows, vectors = await snapshot(fresh, user_id)
    assert set(rows) == vectors
    report = await fresh.index.check()
    assert not report.drift, report.as_dict()
