"""The engine on the real model, real Chroma and both databases."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest

from engine.app import MemoryEngine
from engine.errors import EmptyText, MemoryNotFound, SourceTaken, TextTooLong, UnknownUser
from storage.models import utcnow


@pytest.fixture
async def alice(engine: MemoryEngine) -> int:
    await engine.users.register(user_id=101, username="alice")
    await engine.users.register(user_id=202, username="bob")
    return 101


async def test_recall_finds_the_passport_by_meaning(engine: MemoryEngine, alice: int) -> None:
    for text in (
        "my passport is in the blue drawer",
        "buy oat milk and eggs",
        "the dentist appointment is on friday at 3pm",
        "wifi password at the cabin is on the fridge",
    ):
        await engine.memories.save(user_id=alice, text=text)
    hits = await engine.memories.recall(user_id=alice, query="where did I leave my passport")
    assert hits[0].memory.text == "my passport is in the blue drawer"
    assert hits[0].similarity is not None
    assert hits[0].similarity > 0.5


async def test_recall_is_hybrid_keyword_hits_count(engine: MemoryEngine, alice: int) -> None:
    await engine.memories.save(user_id=alice, text="locker code 4417 at the gym")
    await engine.memories.save(user_id=alice, text="call grandma on sunday")
    hits = await engine.memories.recall(user_id=alice, query="4417", min_similarity=0.99)
    assert [h.memory.text for h in hits] == ["locker code 4417 at the gym"]
    assert hits[0].keyword
    assert hits[0].similarity is None


async def test_recall_sees_only_the_callers_memories(engine: MemoryEngine, alice: int) -> None:
    await engine.memories.save(user_id=202, text="bob's passport is in the safe")
    await engine.memories.save(user_id=alice, text="alice likes green tea")
    hits = await engine.memories.recall(user_id=alice, query="passport", min_similarity=-1)
    assert {h.memory.user_id for h in hits} == {alice}


async def test_recall_and_list_hide_expired_memories(engine: MemoryEngine, alice: int) -> None:
    await engine.memories.save(
        user_id=alice,
        text="parking spot 42 on level B",
        expires_at=utcnow() - timedelta(seconds=1),
    )
    kept = await engine.memories.save(
        user_id=alice,
        text="parking card is in the glovebox",
        expires_at=utcnow() + timedelta(days=1),
    )
    hits = await engine.memories.recall(user_id=alice, query="parking spot", min_similarity=-1)
    assert [h.memory.id for h in hits] == [kept.memory.id]
    page = await engine.memories.list(user_id=alice)
    assert [m.id for m in page.items] == [kept.memory.id]
    assert (await engine.memories.check()).expired_present == 1


async def test_recall_drops_vectors_without_a_live_row(engine: MemoryEngine, alice: int) -> None:
    saved = await engine.memories.save(user_id=alice, text="the boat keys hang by the door")
    async with engine.db.writes() as session:  # damage: the row goes, the vector stays
        from storage import repositories as repo

        await repo.delete_memories(session, ids=[saved.memory.id])
        await session.commit()
    assert await engine.memories.recall(user_id=alice, query="boat keys", min_similarity=-1) == []
    report = await engine.memories.check()
    assert [r.id for r in report.orphans] == [str(saved.memory.id)]
    await engine.memories.repair()
    assert not (await engine.memories.check()).drift


async def test_list_is_paged_newest_first(engine: MemoryEngine, alice: int) -> None:
    for i in range(7):
        await engine.memories.save(user_id=alice, text=f"note number {i}")
    first = await engine.memories.list(user_id=alice, limit=3)
    rest = await engine.memories.list(user_id=alice, offset=3, limit=10)
    assert [m.text for m in first.items] == ["note number 6", "note number 5", "note number 4"]
    assert first.total == 7
    assert first.has_more
    assert not rest.has_more
    assert len(rest.items) == 4


async def test_same_chat_message_saves_once(engine: MemoryEngine, alice: int) -> None:
    first = await engine.memories.save(user_id=alice, text="hello", chat_id=5, message_id=9)
    again = await engine.memories.save(user_id=alice, text="hello", chat_id=5, message_id=9)
    assert first.created
    assert not again.created
    assert again.memory.id == first.memory.id
    report = await engine.memories.check(user_id=alice)
    assert (report.sql_count, report.vector_count) == (1, 1)
    with pytest.raises(SourceTaken):
        await engine.memories.save(user_id=202, text="hi", chat_id=5, message_id=9)


@pytest.mark.parametrize(
    ("text", "error"), [("", EmptyText), ("   \n\t ", EmptyText), ("x" * 4001, TextTooLong)]
)
async def test_bad_text_writes_nothing(
    engine: MemoryEngine, alice: int, text: str, error: type[Exception]
) -> None:
    with pytest.raises(error):
        await engine.memories.save(user_id=alice, text=text)
    with pytest.raises(error):
        await engine.memories.save_many(user_id=alice, texts=["fine", text])
    report = await engine.memories.check()
    assert (report.sql_count, report.vector_count) == (0, 0)


async def test_unknown_user_writes_nothing(engine: MemoryEngine) -> None:
    with pytest.raises(UnknownUser):
        await engine.memories.save(user_id=999, text="who am I")
    with pytest.raises(UnknownUser):
        await engine.memories.save_many(user_id=999, texts=["a", "b"])
    assert (await engine.memories.check()).vector_count == 0


async def test_text_at_the_limit_and_odd_characters_round_trip(
    engine: MemoryEngine, alice: int
) -> None:
    odd = "<b>&amp;</b> 'quotes' \"double\" emoji 🧠🎉 é ñ 中文 \\ % _ \x00end"
    saved = await engine.memories.save(user_id=alice, text=odd)
    assert (
        await engine.memories.get(user_id=alice, memory_id=saved.memory.id)
    ).text == odd.replace("\x00", "")
    long = await engine.memories.save(user_id=alice, text="y" * 4000)
    assert len(long.memory.text) == 4000


async def test_edit_reembeds_and_forget_removes(engine: MemoryEngine, alice: int) -> None:
    saved = await engine.memories.save(user_id=alice, text="the car is parked on elm street")
    edited = await engine.memories.edit(
        user_id=alice, memory_id=saved.memory.id, text="my bicycle is locked at the station"
    )
    assert edited.text.startswith("my bicycle")
    hits = await engine.memories.recall(user_id=alice, query="where is my bike")
    assert hits[0].memory.id == saved.memory.id
    assert not (await engine.memories.check()).drift
    await engine.memories.forget(user_id=alice, memory_id=saved.memory.id)
    with pytest.raises(MemoryNotFound):
        await engine.memories.get(user_id=alice, memory_id=saved.memory.id)
    assert (await engine.memories.check()).vector_count == 0


async def test_nobody_edits_or_forgets_another_users_memory(
    engine: MemoryEngine, alice: int
) -> None:
    bobs = await engine.memories.save(user_id=202, text="bob's secret")
    with pytest.raises(MemoryNotFound):
        await engine.memories.edit(user_id=alice, memory_id=bobs.memory.id, text="mine now")
    with pytest.raises(MemoryNotFound):
        await engine.memories.forget(user_id=alice, memory_id=bobs.memory.id)
    with pytest.raises(MemoryNotFound):
        await engine.memories.get(user_id=alice, memory_id=uuid.uuid4())
    assert (
        await engine.memories.get(user_id=202, memory_id=bobs.memory.id)
    ).text == "bob's secret"


async def test_forget_all_is_per_user(engine: MemoryEngine, alice: int) -> None:
    await engine.memories.save_many(user_id=alice, texts=[f"alice {i}" for i in range(100)])
    await engine.memories.save_many(user_id=202, texts=[f"bob {i}" for i in range(5)])
    assert await engine.memories.forget_all(user_id=alice) == 100
    assert (await engine.memories.check(user_id=alice)).vector_count == 0
    bob = await engine.memories.check(user_id=202)
    assert (bob.sql_count, bob.vector_count, bob.drift) == (5, 5, False)


async def test_edit_by_source_follows_the_chat_message(engine: MemoryEngine, alice: int) -> None:
    await engine.memories.save(user_id=alice, text="meet at 5", chat_id=1, message_id=2)
    edited = await engine.memories.edit_by_source(
        user_id=alice, chat_id=1, message_id=2, text="meet at 6"
    )
    assert edited is not None
    assert edited.text == "meet at 6"
    assert (
        await engine.memories.edit_by_source(user_id=alice, chat_id=1, message_id=3, text="x")
        is None
    )


async def test_reindex_rebuilds_from_sql(engine: MemoryEngine, alice: int, reopen: Any) -> None:
    await engine.memories.save_many(user_id=alice, texts=[f"fact {i}" for i in range(70)])
    before = [h.memory.id for h in await engine.memories.recall(user_id=alice, query="fact 7")]
    seen: list[int] = []
    assert await engine.memories.reindex(progress=seen.append) == 70
    assert sum(seen) == 70
    assert engine.memories.vectors.generation == 2
    fresh = await reopen()
    assert fresh.memories.vectors.generation == 2
    assert not (await fresh.memories.check()).drift
    after = [h.memory.id for h in await fresh.memories.recall(user_id=alice, query="fact 7")]
    assert after == before
