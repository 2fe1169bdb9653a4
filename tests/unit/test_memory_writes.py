"""Memory writes on fakes (both databases): save, save_many, edit, forget, forget_all.

Moved from tests/integration/test_engine.py; what needs the real model or Chroma stays there.
"""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from types import SimpleNamespace

import numpy as np
import pytest

from engine.app import MemoryEngine
from engine.clock import utcnow
from engine.errors import EmptyText, MemoryNotFound, SourceTaken, TextTooLong, UnknownUser
from engine.vector_index import VectorRecord
from storage.metrics import REGISTRY


async def test_same_chat_message_saves_once(fake_engine: MemoryEngine, alice: int) -> None:
    first = await fake_engine.writes.save(space_id=alice, text="hello", chat_id=5, message_id=9)
    again = await fake_engine.writes.save(space_id=alice, text="hello", chat_id=5, message_id=9)
    assert first.created
    assert not again.created
    assert again.memory.id == first.memory.id
    report = await fake_engine.index.check(space_id=alice)
    assert (report.sql_count, report.vector_count) == (1, 1)
    with pytest.raises(SourceTaken):
        await fake_engine.writes.save(space_id=202, text="hi", chat_id=5, message_id=9)


@pytest.mark.parametrize(
    ("text", "error"), [("", EmptyText), ("   \n\t ", EmptyText), ("x" * 4001, TextTooLong)]
)
async def test_bad_text_writes_nothing(
    fake_engine: MemoryEngine, alice: int, text: str, error: type[Exception]
) -> None:
    with pytest.raises(error):
        await fake_engine.writes.save(space_id=alice, text=text)
    with pytest.raises(error):
        await fake_engine.writes.save_many(space_id=alice, texts=["fine", text])
    report = await fake_engine.index.check()
    assert (report.sql_count, report.vector_count) == (0, 0)


async def test_unknown_user_writes_nothing(fake_engine: MemoryEngine) -> None:
    with pytest.raises(UnknownUser):
        await fake_engine.writes.save(space_id=999, text="who am I")
    with pytest.raises(UnknownUser):
        await fake_engine.writes.save_many(space_id=999, texts=["a", "b"])
    assert (await fake_engine.index.check()).vector_count == 0


async def test_text_at_the_limit_and_odd_characters_round_trip(
    fake_engine: MemoryEngine, alice: int
) -> None:
    odd = "<b>&amp;</b> 'quotes' \"double\" emoji 🧠🎉 é ñ 中文 \\ % _ \x00end"
    saved = await fake_engine.writes.save(space_id=alice, text=odd)
    got = await fake_engine.reads.get(space_id=alice, memory_id=saved.memory.id)
    assert got.text == odd.replace("\x00", "")
    long = await fake_engine.writes.save(space_id=alice, text="y" * 4000)
    assert len(long.memory.text) == 4000


async def test_edit_reembeds_and_forget_removes(fake_engine: MemoryEngine, alice: int) -> None:
    saved = await fake_engine.writes.save(space_id=alice, text="the car is parked on elm street")
    edited = await fake_engine.writes.edit(
        space_id=alice, memory_id=saved.memory.id, text="my bicycle is locked at the station"
    )
    assert edited.text.startswith("my bicycle")
    # "bike" is in neither text: only the new vector (it shares "my" and "is" with the query,
    # 0.38 by bag of words; the old one shares "is", 0.19) clears the 0.25 floor.
    hits = await fake_engine.reads.recall(space_id=alice, query="where is my bike")
    assert hits[0].memory.id == saved.memory.id
    assert hits[0].similarity is not None
    # the keyword index followed the edit in the same transaction: old words find nothing
    reads = fake_engine.reads
    assert await reads.recall(space_id=alice, query="elm", min_similarity=0.99) == []
    found = await reads.recall(space_id=alice, query="bicycle", min_similarity=0.99)
    assert [(h.memory.id, h.keyword) for h in found] == [(saved.memory.id, True)]
    assert not (await fake_engine.index.check()).drift
    await fake_engine.writes.forget(space_id=alice, memory_id=saved.memory.id)
    with pytest.raises(MemoryNotFound):
        await fake_engine.reads.get(space_id=alice, memory_id=saved.memory.id)
    assert (await fake_engine.index.check()).vector_count == 0


async def test_nobody_edits_or_forgets_another_users_memory(
    fake_engine: MemoryEngine, alice: int
) -> None:
    bobs = await fake_engine.writes.save(space_id=202, text="bob's secret")
    with pytest.raises(MemoryNotFound):
        await fake_engine.writes.edit(space_id=alice, memory_id=bobs.memory.id, text="mine now")
    with pytest.raises(MemoryNotFound):
        await fake_engine.writes.forget(space_id=alice, memory_id=bobs.memory.id)
    with pytest.raises(MemoryNotFound):
        await fake_engine.reads.get(space_id=alice, memory_id=uuid.uuid4())
    got = await fake_engine.reads.get(space_id=202, memory_id=bobs.memory.id)
    assert got.text == "bob's secret"


async def test_forget_all_is_per_user(fake_engine: MemoryEngine, alice: int) -> None:
    await fake_engine.writes.save_many(space_id=alice, texts=[f"alice {i}" for i in range(100)])
    await fake_engine.writes.save_many(space_id=202, texts=[f"bob {i}" for i in range(5)])
    assert await fake_engine.writes.forget_all(space_id=alice) == 100
    assert (await fake_engine.index.check(space_id=alice)).vector_count == 0
    bob = await fake_engine.index.check(space_id=202)
    assert (bob.sql_count, bob.vector_count, bob.drift) == (5, 5, False)


async def test_edit_by_source_follows_the_chat_message(
    fake_engine: MemoryEngine, alice: int
) -> None:
    await fake_engine.writes.save(space_id=alice, text="meet at 5", chat_id=1, message_id=2)
    edited = await fake_engine.writes.edit_by_source(
        author_id=alice, chat_id=1, message_id=2, text="meet at 6"
    )
    assert edited is not None
    assert edited.text == "meet at 6"
    missing = await fake_engine.writes.edit_by_source(
        author_id=alice, chat_id=1, message_id=3, text="x"
    )
    assert missing is None


@pytest.mark.dates
async def test_edit_by_source_of_an_expired_memory_changes_nothing(
    fake_engine: MemoryEngine, alice: int
) -> None:
    gone = utcnow() - timedelta(seconds=1)
    await fake_engine.writes.save(
        space_id=alice, text="old parking spot", chat_id=7, message_id=1, expires_at=gone
    )
    edited = await fake_engine.writes.edit_by_source(
        author_id=alice, chat_id=7, message_id=1, text="new parking spot"
    )
    assert edited is None
    async with fake_engine.stores.reading() as repos:
        [row] = (await repos.memories.by_source([(7, 1)])).values()
    assert row.text == "old parking spot"


async def test_forget_all_spares_a_vector_younger_than_the_grace_period(
    fake_engine: MemoryEngine, alice: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A vector with no row yet may be a save in flight: it commits after forget_all."""
    await fake_engine.writes.save(space_id=alice, text="keep calm")
    in_flight = VectorRecord(str(uuid.uuid4()), alice, np.ones(384, np.float32), 0, "d")
    await fake_engine.stores.vectors.upsert([in_flight])
    assert await fake_engine.writes.forget_all(space_id=alice) == 1
    left = await fake_engine.stores.vectors.scan(alice)
    assert [v.id for v in left] == [in_flight.id]
    later = time.time() + fake_engine.settings.sweep_grace_s + 1
    monkeypatch.setattr("engine.memory_writes.time", SimpleNamespace(time=lambda: later))
    assert await fake_engine.writes.forget_all(space_id=alice) == 0
    assert await fake_engine.stores.vectors.scan(alice) == []


def sql_counts() -> float:
    return REGISTRY.get_sample_value("memorybot_sql_statements_total", {"kind": "count"}) or 0.0


async def test_a_save_told_its_space_count_runs_no_count_of_its_own(
    fake_engine: MemoryEngine, alice: int
) -> None:
    """The bot counts the space for its quota check and hands the figure on (issue 31: one
    COUNT per save, not two); without it the near-duplicate lookup counts for itself."""
    before = sql_counts()
    first = await fake_engine.writes.save(
        space_id=alice, text="the boiler code is 4411", space_count=0
    )
    assert sql_counts() == before
    again = await fake_engine.writes.save(space_id=alice, text="The boiler code is 4411!")
    assert sql_counts() == before + 1
    assert again.near_duplicate is not None
    assert again.near_duplicate.id == first.memory.id
