"""Quota counts are written behind; `flush()` is a barrier for everything counted before it."""

from __future__ import annotations

import asyncio

from engine.app import MemoryEngine


async def test_flush_waits_for_a_flush_already_in_flight(engine: MemoryEngine) -> None:
    user = await engine.users.register(user_id=501)
    engine.quotas.consume_for(user)
    in_flight = asyncio.create_task(engine.quotas.flush())  # what the background flusher does
    await asyncio.sleep(0)  # it has taken the count and waits for the database
    await engine.quotas.flush()  # nothing left to take, yet it must not return early
    async with engine.stores.reading() as repos:
        row = await repos.users.get(501)
    assert row is not None
    assert row.ops_today == 1
    await in_flight


async def test_counts_made_during_a_flush_are_written_by_the_next(engine: MemoryEngine) -> None:
    user = await engine.users.register(user_id=502)
    engine.quotas.consume_for(user)
    in_flight = asyncio.create_task(engine.quotas.flush())
    await asyncio.sleep(0)
    engine.quotas.consume_for(user)  # counted while the first write is under way
    await engine.quotas.flush()
    await in_flight
    async with engine.stores.reading() as repos:
        row = await repos.users.get(502)
    assert row is not None
    assert row.ops_today == 2


async def test_closing_during_a_background_write_keeps_its_counts(engine: MemoryEngine) -> None:
    user = await engine.users.register(user_id=503)
    engine.quotas.consume_for(user)  # starts the background flusher
    for _ in range(2000):  # until its write is under way (after FLUSH_S)
        if engine.quotas.writing:
            break
        await asyncio.sleep(0.001)
    assert engine.quotas.writing
    await engine.quotas.aclose()  # cancels the flusher in the middle of its write
    async with engine.stores.reading() as repos:
        row = await repos.users.get(503)
    assert row is not None
    assert row.ops_today == 1
