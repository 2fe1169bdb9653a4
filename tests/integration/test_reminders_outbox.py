"""The reminders outbox on both databases: create is all or nothing, claims never overlap,
nothing is claimed early, a lapsed claim is taken over, and forgetting the memory ends it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic import command
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from engine.app import MemoryEngine
from engine.errors import VectorWriteFailed
from engine.faults import Faults, Step
from engine.reminder_outbox import MAX_ATTEMPTS, Reminder
from engine.reminders import DONE, SCHEDULED
from engine.schedule import Recurrence, Schedule
from jobs import reminders as jobs_reminders
from jobs.reminders import ReminderWorker
from storage import migrate

pytestmark = pytest.mark.dates

USER = 5_501


def at(due: datetime, text: str = "water the plants", every: Recurrence | None = None) -> Schedule:
    return Schedule(due, text, every)


async def remind(engine: MemoryEngine, due: datetime, text: str = "water the plants") -> int:
    reminder = await engine.reminders.create(
        space_id=USER, user_id=USER, schedule=at(due, text), timezone="UTC"
    )
    return reminder.id


@pytest.fixture
async def user(engine: MemoryEngine) -> int:
    await engine.users.register(user_id=USER)
    return USER


async def test_a_reminder_is_a_recallable_memory(engine: MemoryEngine, user: int) -> None:
    due = datetime.now(UTC) + timedelta(hours=2)
    await remind(engine, due, "renew the car insurance policy")
    [upcoming] = await engine.reminders.upcoming(space_id=user)
    assert (upcoming.text, upcoming.due_at, upcoming.status) == (
        "renew the car insurance policy",
        due,
        SCHEDULED,
    )
    hits = await engine.reads.recall(space_id=user, query="car insurance")
    assert [h.memory.kind for h in hits][:1] == ["reminder"]
    assert hits[0].memory.id == upcoming.memory_id


async def test_create_is_all_or_nothing(engine: MemoryEngine, user: int, faults: Faults) -> None:
    faults.fail(Step.VECTOR_WRITE)
    with pytest.raises(VectorWriteFailed):
        await remind(engine, datetime.now(UTC) + timedelta(hours=1))
    assert await engine.reminders.upcoming(space_id=user) == []
    assert (await engine.reads.page(space_id=user)).total == 0


async def test_nothing_is_claimed_before_it_is_due(engine: MemoryEngine, user: int) -> None:
    outbox = engine.reminders.outbox
    due = datetime.now(UTC) + timedelta(seconds=30)
    reminder_id = await remind(engine, due)
    assert await outbox.claim_due(now=due - timedelta(milliseconds=1)) == []
    assert await outbox.next_due() == due
    [claimed] = await outbox.claim_due(now=due)
    assert claimed.id == reminder_id
    assert await outbox.claim_due(now=due + timedelta(seconds=1), owner="other") == []
    assert await outbox.mark_sent(claimed, message_id=7, now=due)
    assert await outbox.claim_due(now=due + timedelta(days=1), owner="other") == []
    assert await engine.reminders.upcoming(space_id=user) == []
    gone = await engine.reminders.get(space_id=user, reminder_id=reminder_id)
    assert gone is not None
    assert (gone.status, gone.occurrence) == (DONE, 1)


async def test_a_recurring_reminder_moves_to_its_next_time(
    engine: MemoryEngine, user: int
) -> None:
    outbox = engine.reminders.outbox
    every_day = Recurrence(None, datetime(2026, 1, 1, 8, 0).time())
    first = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    await engine.reminders.create(
        space_id=user, user_id=user, schedule=at(first, "vitamins", every_day), timezone="UTC"
    )
    [claimed] = await outbox.claim_due(now=first)
    sent_at = first + timedelta(seconds=2)
    assert await outbox.mark_sent(claimed, message_id=1, now=sent_at)
    [next_one] = await engine.reminders.upcoming(space_id=user)
    assert (next_one.due_at, next_one.occurrence, next_one.status) == (
        first + timedelta(days=1),
        1,
        SCHEDULED,
    )
    assert not await outbox.mark_sent(claimed, message_id=1, now=sent_at), "one mark only"


async def test_a_lapsed_claim_is_taken_over_and_the_old_mark_is_void(
    engine: MemoryEngine, user: int
) -> None:
    outbox = engine.reminders.outbox
    now = datetime.now(UTC)
    await remind(engine, now)
    [held] = await outbox.claim_due(now=now, owner="dead", lease=timedelta(seconds=5))
    assert await outbox.claim_due(now=now + timedelta(seconds=4), owner="new") == []
    assert await outbox.next_due() == now + timedelta(seconds=5)
    [taken] = await outbox.claim_due(now=now + timedelta(seconds=6), owner="new")
    assert taken.id == held.id
    assert not await outbox.mark_sent(held, message_id=1, owner="dead")
    assert await outbox.mark_sent(taken, message_id=2, owner="new")


async def test_concurrent_claimers_never_share_a_reminder(
    engine: MemoryEngine, user: int, reopen: Callable[[], Any]
) -> None:
    now = datetime.now(UTC)
    texts = [f"task number {i}" for i in range(40)]
    ids = [
        await remind(engine, now - timedelta(seconds=i % 5), text) for i, text in enumerate(texts)
    ]
    other: MemoryEngine = await reopen()

    async def drain(outbox: Any, owner: str) -> list[int]:
        got: list[int] = []
        while batch := await outbox.claim_due(owner=owner, limit=2):
            got.extend(r.id for r in batch)
            await asyncio.sleep(0.01)  # room for the other claimer (SQLite serialises writes)
        return got

    first, second = await asyncio.gather(
        drain(engine.reminders.outbox, "a"), drain(other.reminders.outbox, "b")
    )
    assert not set(first) & set(second)
    assert sorted(first + second) == sorted(ids)
    assert first, "both claimers took part"
    assert second, "both claimers took part"


async def test_retry_backoff_and_blocked_chat(engine: MemoryEngine, user: int) -> None:
    outbox = engine.reminders.outbox
    now = datetime.now(UTC)
    await remind(engine, now)
    [claimed] = await outbox.claim_due(now=now)
    assert await outbox.retry_later(claimed, delay_s=60, now=now)
    assert await outbox.claim_due(now=now + timedelta(seconds=30)) == []
    [again] = await outbox.claim_due(now=now + timedelta(seconds=61))
    assert again.attempts == 1
    assert await outbox.mark_failed(again)
    assert await outbox.claim_due(now=now + timedelta(days=9)) == []
    assert await engine.reminders.upcoming(space_id=user) == []


async def test_a_429_is_no_attempt_and_a_recurring_reminder_outlives_its_failures(
    engine: MemoryEngine, user: int
) -> None:
    """Issue 30: 429s were counted as attempts, and a recurring reminder that failed
    MAX_ATTEMPTS times was FAILED for good instead of moving to its next occurrence."""
    outbox = engine.reminders.outbox
    every_day = Recurrence(None, datetime(2026, 1, 1, 8, 0).time())
    first = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    await engine.reminders.create(
        space_id=user, user_id=user, schedule=at(first, "vitamins", every_day), timezone="UTC"
    )
    now = first
    [claimed] = await outbox.claim_due(now=now)
    assert await outbox.retry_later(claimed, delay_s=3, counted=False, now=now)
    now += timedelta(seconds=4)
    [claimed] = await outbox.claim_due(now=now)
    assert claimed.attempts == 0, "a 429 is not a failure"
    for attempt in range(1, MAX_ATTEMPTS + 1):
        assert await outbox.retry_later(claimed, delay_s=1, now=now)
        now += timedelta(seconds=2)
        due = await outbox.claim_due(now=now)
        if attempt < MAX_ATTEMPTS:
            [claimed] = due
            assert claimed.attempts == attempt
    assert due == [], "the occurrence was given up"
    [next_one] = await engine.reminders.upcoming(space_id=user)
    assert (next_one.due_at, next_one.occurrence, next_one.status, next_one.attempts) == (
        first + timedelta(days=1),
        1,
        SCHEDULED,
        0,
    )


async def test_a_sent_reminder_is_marked_through_a_store_blip_never_sent_again(
    engine: MemoryEngine, user: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    outbox = engine.reminders.outbox
    reminder_id = await remind(engine, datetime.now(UTC) - timedelta(seconds=1))
    sends: list[int] = []

    async def send(reminder: Reminder, late: bool) -> int:
        sends.append(reminder.id)
        return 1_000 + len(sends)

    real_mark = outbox.mark_sent
    blips = [RuntimeError("database is locked"), RuntimeError("connection reset")]

    async def mark_blipping(reminder: Reminder, **options: Any) -> bool:
        if blips:
            raise blips.pop()
        return await real_mark(reminder, **options)

    monkeypatch.setattr(outbox, "mark_sent", mark_blipping)
    monkeypatch.setattr(jobs_reminders, "MARK_RETRY_S", (0.01, 0.01, 0.01))
    worker = ReminderWorker(outbox=outbox, send=send)
    assert await worker.deliver_due() == 1
    assert blips == [], "the mark failed twice"
    assert len(sends) == 1
    assert worker.sent == 1
    assert await outbox.claim_due(now=datetime.now(UTC) + timedelta(days=1)) == []
    done = await engine.reminders.get(space_id=user, reminder_id=reminder_id)
    assert done is not None
    assert (done.status, done.occurrence) == (DONE, 1)


async def test_snooze_done_and_cancel(engine: MemoryEngine, user: int) -> None:
    outbox, reminders = engine.reminders.outbox, engine.reminders
    now = datetime.now(UTC)
    reminder_id = await remind(engine, now)
    [claimed] = await outbox.claim_due(now=now)
    await outbox.mark_sent(claimed, message_id=3, now=now)
    later = now + timedelta(hours=1)
    moved = await reminders.snooze(space_id=user, reminder_id=reminder_id, until=later)
    assert moved is not None
    assert (moved.status, moved.due_at) == (SCHEDULED, later)
    assert await reminders.done(space_id=user, reminder_id=reminder_id)
    assert await reminders.upcoming(space_id=user) == []
    assert not await reminders.cancel(space_id=user, reminder_id=reminder_id)
    other = await remind(engine, later)
    assert not await reminders.cancel(space_id=user + 1, reminder_id=other), "other space"
    assert await reminders.cancel(space_id=user, reminder_id=other)
    assert await outbox.claim_due(now=later + timedelta(days=1)) == []


async def test_forgetting_the_memory_removes_the_reminder(engine: MemoryEngine, user: int) -> None:
    now = datetime.now(UTC) + timedelta(minutes=5)
    await remind(engine, now, "first")
    await remind(engine, now, "second")
    first, _ = await engine.reminders.upcoming(space_id=user)
    await engine.writes.forget(space_id=user, memory_id=first.memory_id)
    assert [r.text for r in await engine.reminders.upcoming(space_id=user)] == ["second"]
    await engine.writes.forget_all(space_id=user)
    assert await engine.reminders.upcoming(space_id=user) == []
    assert await engine.reminders.outbox.claim_due(now=now + timedelta(days=1)) == []


async def test_migration_0009_downgrades_and_upgrades(engine: MemoryEngine) -> None:
    write_engine = engine.stores.db.write_engine

    def tables(connection: Connection) -> set[str]:
        return set(inspect(connection).get_table_names())

    def down(connection: Connection) -> None:
        command.downgrade(migrate._config(connection), "0008")

    async with write_engine.begin() as connection:
        await connection.run_sync(down)
        assert "reminders" not in await connection.run_sync(tables)
    await migrate.upgrade(write_engine)
    async with write_engine.connect() as connection:
        assert "reminders" in await connection.run_sync(tables)
    assert await migrate.current_revision(write_engine) == migrate.head_revision()
