"""Moving a group's space to its supergroup's id (issue 30, item 8) on real Chroma, both
databases: everything moves in one unit of work, a fault at any step leaves both stores as
they were, and a move runs again (or twice at once) harmlessly."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.conversations import moving_chat_traces
from bot.memos import Memos, memo_key
from engine.app import MemoryEngine
from engine.consistency import compare
from engine.errors import InvalidInput
from engine.faults import Faults, Step
from engine.schedule import Schedule
from tests.unit.fault_kit import EXPECTED, WRITE_STEPS

OLD = -480_001
SHARDS = 16  # a multiple of every CHROMA_SHARDS the tests use (4)
OTHER_SHARD = -1_000_000_480_003  # % 16 differs from OLD % 16
SAME_SHARD = OTHER_SHARD - ((OTHER_SHARD - OLD) % SHARDS)  # == OLD % 16
NEIGHBOUR = -480_002
assert SAME_SHARD % SHARDS == OLD % SHARDS != OTHER_SHARD % SHARDS


async def seeded(engine: MemoryEngine) -> list[str]:
    """Three memories (one a reminder) in OLD, one in NEIGHBOUR; OLD's texts."""
    await engine.writes.save_many(
        space_id=OLD,
        texts=["the wifi password is hunter2 #office", "plumber on friday"],
        author_id=7,
    )
    due = datetime.now(UTC) + timedelta(hours=3)
    await engine.reminders.create(
        space_id=OLD, user_id=7, schedule=Schedule(due, "water the plants"), timezone="UTC"
    )
    await engine.writes.save(space_id=NEIGHBOUR, text="a neighbour's note", author_id=7)
    return await texts(engine, OLD)


async def texts(engine: MemoryEngine, space: int) -> list[str]:
    return sorted(m.text for m in (await engine.reads.page(space_id=space, limit=100)).items)


async def state(engine: MemoryEngine, space: int) -> tuple[list[str], set[str], int, list[Any]]:
    """(texts, vector ids, reminders, tags) of one space."""
    vectors = {v.id for v in await engine.stores.vectors.scan(space) if v.space_id == space}
    reminders = await engine.reminders.upcoming(space_id=space)
    return (
        await texts(engine, space),
        vectors,
        len(reminders),
        await engine.reads.tags(space_id=space),
    )


async def agree(engine: MemoryEngine, *spaces: int) -> None:
    for space in spaces:
        report = await compare(engine.stores, space_id=space)
        assert not report.drift, report.as_dict()


@pytest.mark.parametrize("new", [OTHER_SHARD, SAME_SHARD], ids=["other-shard", "same-shard"])
async def test_a_move_takes_memories_vectors_tags_and_reminders_once(
    engine: MemoryEngine, new: int
) -> None:
    before = await seeded(engine)
    neighbour = await state(engine, NEIGHBOUR)
    assert await engine.spaces.move(old=OLD, new=new) == 3
    moved_texts, vectors, reminders, tags = await state(engine, new)
    assert moved_texts == before
    assert len(vectors) == 3
    assert reminders == 1
    assert ("office", 1) in tags
    assert await state(engine, OLD) == ([], set(), 0, [])
    assert await state(engine, NEIGHBOUR) == neighbour
    assert await engine.spaces.moved_to(OLD) == new
    [hit] = await engine.reads.recall(space_id=new, query="wifi password", k=1)
    assert "hunter2" in hit.memory.text
    assert await engine.spaces.move(old=OLD, new=new) == 0, "the second notice moves nothing"
    assert (await state(engine, new))[:3] == (before, vectors, 1)
    await agree(engine, OLD, new, NEIGHBOUR)


async def test_the_supergroup_keeps_what_it_saved_before_the_move(engine: MemoryEngine) -> None:
    before = await seeded(engine)
    await engine.writes.save(space_id=OTHER_SHARD, text="saved in the supergroup first")
    assert await engine.spaces.move(old=OLD, new=OTHER_SHARD) == 3
    assert await texts(engine, OTHER_SHARD) == sorted([*before, "saved in the supergroup first"])
    await agree(engine, OLD, OTHER_SHARD)


async def test_two_moves_at_once_move_everything_once(engine: MemoryEngine) -> None:
    before = await seeded(engine)
    counts = await asyncio.gather(*(engine.spaces.move(old=OLD, new=OTHER_SHARD) for _ in "ab"))
    assert sorted(counts) == [0, 3]
    assert await texts(engine, OTHER_SHARD) == before
    await agree(engine, OLD, OTHER_SHARD)


@pytest.mark.parametrize("step", WRITE_STEPS)
@pytest.mark.parametrize("new", [OTHER_SHARD, SAME_SHARD], ids=["other-shard", "same-shard"])
async def test_a_fault_at_any_step_leaves_the_space_where_it_was(
    engine: MemoryEngine, faults: Faults, step: Step, new: int
) -> None:
    await seeded(engine)
    old_state = await state(engine, OLD)
    faults.fail(step)
    with pytest.raises(EXPECTED[step]):
        await engine.spaces.move(old=OLD, new=new)
    assert await state(engine, OLD) == old_state
    assert await state(engine, new) == ([], set(), 0, [])
    assert await engine.spaces.moved_to(OLD) is None
    await agree(engine, OLD, new)
    assert await engine.spaces.move(old=OLD, new=new) == 3, "the retry moves it all"
    await agree(engine, OLD, new)


@pytest.mark.parametrize(("old", "new"), [(OLD, OLD), (5, OTHER_SHARD), (OLD, 5)])
async def test_only_a_group_moves_to_another_group(
    engine: MemoryEngine, old: int, new: int
) -> None:
    with pytest.raises(InvalidInput):
        await engine.spaces.move(old=old, new=new)


async def test_the_chats_states_memos_and_dead_letters_move_with_it(engine: MemoryEngine) -> None:
    """Pending prompts, the recall and list memos and dead letters follow the chat; where the
    supergroup already has its own (a user started there first), that one is kept."""
    await seeded(engine)
    async with engine.stores.unit_of_work("seed") as uow:
        await uow.conversations.set(OLD, 7, "awaiting_save", {"ttl": None})
        await uow.conversations.set(OLD, 8, "awaiting_recall", {})
        await uow.conversations.set(OTHER_SHARD, 8, "awaiting_save", {"new": True})
        await uow.kv.set(memo_key(OLD, 7), '{"message_id": 5, "query": "wifi"}')
        await uow.kv.set(f"{memo_key(OLD, 7)}:list", '{"message_id": 6, "query": "#office"}')
        await uow.kv.set(memo_key(OLD, 8), "old")
        await uow.kv.set(memo_key(OTHER_SHARD, 8), "new")
        await uow.kv.set(memo_key(NEIGHBOUR, 7), "neighbour")
        await uow.dead_letters.add(update_id=1, chat_id=OLD, raw={}, error="x", attempts=3)
    memos = Memos(engine.stores)
    memos.remember(OLD, 9, 77, "noted, not stored yet")
    traces = moving_chat_traces(OLD, OTHER_SHARD, memos)
    await engine.spaces.move(old=OLD, new=OTHER_SHARD, also=traces)
    assert await memos.query_for(OTHER_SHARD, 9, 77) == "noted, not stored yet"
    assert await memos.query_for(OLD, 9, 77) is None
    await memos.aclose()
    async with engine.stores.reading() as repos:
        assert await repos.conversations.get(OLD, 7) is None
        assert await repos.conversations.get(OLD, 8) is None
        moved = await repos.conversations.get(OTHER_SHARD, 7)
        assert moved is not None
        assert moved[0] == "awaiting_save"
        kept = await repos.conversations.get(OTHER_SHARD, 8)
        assert kept is not None
        assert kept[1] == {"new": True}
        assert await repos.kv.with_prefix(f"recall:{OLD}:") == {}
        assert await repos.kv.with_prefix(f"recall:{OTHER_SHARD}:") == {
            memo_key(OTHER_SHARD, 7): '{"message_id": 5, "query": "wifi"}',
            f"{memo_key(OTHER_SHARD, 7)}:list": '{"message_id": 6, "query": "#office"}',
            memo_key(OTHER_SHARD, 8): "new",
            memo_key(OTHER_SHARD, 9): '{"message_id": 77, "query": "noted, not stored yet"}',
        }
        assert await repos.kv.get(memo_key(NEIGHBOUR, 7)) == "neighbour"
        [letter] = await repos.dead_letters.latest(pending_only=False, limit=5)
        assert letter.chat_id == OTHER_SHARD
