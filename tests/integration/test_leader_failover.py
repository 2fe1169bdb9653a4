"""Broadcast deliveries are claimed in SQL, so a message goes out once even with two leaders.

Two workers delivering one broadcast at the same time (two leaders at once) send each
recipient exactly one copy, on both databases. A claim whose worker died is taken over once
its lease lapses; a live one is not, and only its owner can mark it. And on the real
PostgreSQL, the leader's lock connection is broken mid-broadcast: the leader stops between
sends, the other worker takes over, and every recipient gets exactly one copy.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from engine.broadcast_types import SENT, Delivery
from engine.clock import utcnow
from engine.settings import Settings
from jobs.delivery import CONCURRENCY
from storage.models import BroadcastDeliveryRow
from tests.integration.leader_kit import (
    Inbox,
    broadcast_to,
    engines_on,
    eventually,
    pg_settings_for,
    terminate_lock_connection,
    worker,
)


@pytest.fixture
async def pg_settings(pg_database: str, tmp_path: Path, model_cache: Path) -> Settings:
    return await pg_settings_for(pg_database, tmp_path, model_cache)


async def test_two_workers_at_once_send_each_recipient_one_copy(
    settings: Settings, tmp_path: Path
) -> None:
    async with engines_on(settings, tmp_path) as open_engine:
        first, second = await open_engine(), await open_engine()
        broadcast_id, everyone = await broadcast_to(first, 200)
        inbox = Inbox()
        a, b = worker(first, inbox, "a", rate=0), worker(second, inbox, "b", rate=0)
        await asyncio.gather(a.deliver(broadcast_id), b.deliver(broadcast_id))  # no lock at all
        progress = await second.broadcasts.progress(broadcast_id)
    assert set(inbox.copies()) == everyone
    assert set(inbox.copies().values()) == {1}, "a recipient got the broadcast twice"
    assert inbox.by("a") > 0
    assert inbox.by("b") > 0, "both workers sent: the claims, not a lock, kept them apart"
    assert (a.sent + b.sent, inbox.by("a"), inbox.by("b")) == (len(everyone), a.sent, b.sent)
    assert progress is not None
    assert (progress.status, progress.sent, progress.pending) == ("done", len(everyone), 0)


async def test_a_lapsed_claim_is_taken_over_and_a_live_one_is_not(
    settings: Settings, tmp_path: Path
) -> None:
    async with engines_on(settings, tmp_path) as open_engine:
        engine = await open_engine()
        broadcasts = engine.broadcasts
        broadcast_id, everyone = await broadcast_to(engine, 20)
        dead = await broadcasts.claim(broadcast_id, owner="dead", limit=3)
        alive = await broadcasts.claim(broadcast_id, owner="alive", limit=2)
        async with engine.stores.unit_of_work("lapse") as uow:  # the dead worker's lease ran out
            await uow.session.execute(
                update(BroadcastDeliveryRow)
                .where(BroadcastDeliveryRow.owner == "dead")
                .values(lease_until=utcnow() - timedelta(seconds=1))
            )
        inbox = Inbox()
        taking_over = worker(engine, inbox, "b", rate=0)
        delivering = asyncio.create_task(taking_over.deliver(broadcast_id))
        held = {d.user_id for d in alive}
        await eventually(lambda: set(inbox.copies()) == everyone - held, "all but the live claims")
        assert not await broadcasts.mark(alive[0], SENT, owner="b"), "not b's claim to mark"
        assert not await broadcasts.mark(dead[0], SENT, owner="dead"), "taken over: not dead's"
        assert await broadcasts.mark(alive[0], SENT, owner="alive")
        assert await broadcasts.release(owner="alive") == 1  # the other one, unsent
        await asyncio.wait_for(delivering, 30)
        progress = await broadcasts.progress(broadcast_id)
    assert {d.user_id for d in dead} <= set(inbox.copies())
    assert set(inbox.copies()) == everyone - {alive[0].user_id}
    assert set(inbox.copies().values()) == {1}
    assert progress is not None
    assert (progress.status, progress.sent, progress.pending) == ("done", len(everyone), 0)


async def test_breaking_the_leaders_connection_mid_broadcast_hands_it_over(
    pg_settings: Settings, tmp_path: Path
) -> None:
    async with engines_on(pg_settings, tmp_path) as open_engine:
        first, second = await open_engine(), await open_engine()
        broadcast_id, everyone = await broadcast_to(first, 300)
        inbox = Inbox()
        a, b = worker(first, inbox, "a", rate=100), worker(second, inbox, "b", rate=100)
        running_a = asyncio.create_task(a.run(idle_s=60))  # it will not look again soon
        await eventually(lambda: inbox.by("a") >= 10, "the leader to start sending")
        running_b = asyncio.create_task(b.run(idle_s=0.2))  # asks for leadership every 0.2 s
        await eventually(lambda: inbox.by("a") >= 100, "a third of the broadcast")
        assert inbox.by("b") == 0, "b is no leader yet: it sent nothing"
        assert len(await terminate_lock_connection(pg_settings, "broadcast")) == 1
        await eventually(lambda: inbox.by("b") > 0, "the other worker to take over")
        finished = await second.broadcasts.status(broadcast_id)
        for _ in range(3000):
            if finished == "done":
                break
            await asyncio.sleep(0.01)
            finished = await second.broadcasts.status(broadcast_id)
        a.stop()
        b.stop()
        await asyncio.wait_for(asyncio.gather(running_a, running_b), 30)
        progress = await second.broadcasts.progress(broadcast_id)
    first_of_b = next(i for i, (name, _) in enumerate(inbox.messages) if name == "b")
    late = sum(1 for name, _ in inbox.messages[first_of_b:] if name == "a")
    assert late <= CONCURRENCY, f"{late} sends by the old leader after the new one started"
    assert set(inbox.copies()) == everyone
    assert set(inbox.copies().values()) == {1}, "a recipient got the broadcast twice"
    assert a.sent < len(everyone)
    assert a.sent + b.sent == len(everyone)
    assert progress is not None
    assert (progress.status, progress.sent, progress.pending) == ("done", len(everyone), 0)


async def test_a_stopped_worker_gives_its_claims_back(settings: Settings, tmp_path: Path) -> None:
    async with engines_on(settings, tmp_path) as open_engine:
        engine = await open_engine()
        broadcast_id, everyone = await broadcast_to(engine, 30)
        inbox = Inbox()
        slow = worker(engine, inbox, "slow", rate=2)
        delivering = asyncio.create_task(slow.deliver(broadcast_id))
        await eventually(lambda: inbox.by("slow") >= 2, "two sends")
        slow.stop()
        await asyncio.wait_for(delivering, 30)
        progress = await engine.broadcasts.progress(broadcast_id)
        assert progress is not None
        assert progress.sent == inbox.by("slow")
        assert progress.pending == len(everyone) - progress.sent  # none left claimed: all queued
        claimed = await engine.broadcasts.claim(broadcast_id, owner="next", limit=len(everyone))
    assert len(claimed) == len(everyone) - progress.sent
    assert all(isinstance(d, Delivery) for d in claimed)
