"""Concurrency: idempotency under races, many users at once, group commit at work."""

from __future__ import annotations

import asyncio
from typing import Any

from engine.app import MemoryEngine


async def test_twenty_concurrent_saves_of_one_message_make_one_memory(
    engine: MemoryEngine,
) -> None:
    await engine.users.register(user_id=7)
    results = await asyncio.gather(
        *(
            engine.writes.save(space_id=7, text="only once", chat_id=70, message_id=700)
            for _ in range(20)
        )
    )
    assert len({r.memory.id for r in results}) == 1
    assert sum(r.created for r in results) == 1
    report = await engine.index.check(space_id=7)
    assert (report.sql_count, report.vector_count, report.drift) == (1, 1, False)


async def test_two_engines_racing_on_one_message_make_one_memory(
    engine: MemoryEngine, reopen: Any
) -> None:
    """Two processes' worth of engines: the loser takes the IntegrityError path."""
    other: MemoryEngine = await reopen()
    await engine.users.register(user_id=8)
    saves = [
        e.writes.save(space_id=8, text="raced", chat_id=80, message_id=800)
        for _ in range(10)
        for e in (engine, other)
    ]
    results = await asyncio.gather(*saves)
    assert len({r.memory.id for r in results}) == 1
    report = await engine.index.check(space_id=8)
    assert (report.sql_count, report.vector_count, report.drift) == (1, 1, False)


async def test_two_hundred_saves_from_twenty_users_all_land(engine: MemoryEngine) -> None:
    users = list(range(1000, 1020))
    for user_id in users:
        await engine.users.register(user_id=user_id)
    results = await asyncio.gather(
        *(
            engine.writes.save(
                space_id=user_id, text=f"user {user_id} item {i} secret word{user_id}"
            )
            for i in range(10)
            for user_id in users
        )
    )
    assert len({r.memory.id for r in results}) == 200
    assert engine.writes.save_batches < 200  # group commit actually grouped
    report = await engine.index.check()
    assert (report.sql_count, report.vector_count, report.drift) == (200, 200, False)
    for user_id in users:
        hits = await engine.reads.recall(
            space_id=user_id, query=f"secret word{user_id}", k=20, min_similarity=-1
        )
        assert len(hits) == 10
        assert {h.memory.space_id for h in hits} == {user_id}
