"""The engine on the real model, real Chroma and both databases: what fakes cannot show.

Recall by meaning needs the real model; a fresh engine finding the generation a reindex
recorded needs a fresh Chroma client. Every other engine behaviour (save, edit, forget,
recall, repair, reindex, expiry, the full fault matrix) runs on fakes in tests/unit.
"""

from __future__ import annotations

from typing import Any

from engine.app import MemoryEngine


async def test_recall_finds_the_passport_by_meaning(engine: MemoryEngine) -> None:
    await engine.users.register(user_id=101, username="alice")
    for text in (
        "my passport is in the blue drawer",
        "buy oat milk and eggs",
        "the dentist appointment is on friday at 3pm",
        "wifi password at the cabin is on the fridge",
    ):
        await engine.writes.save(space_id=101, text=text)
    hits = await engine.reads.recall(space_id=101, query="where did I leave my passport")
    assert hits[0].memory.text == "my passport is in the blue drawer"
    assert hits[0].similarity is not None
    assert hits[0].similarity > 0.5


async def test_a_fresh_engine_opens_the_generation_reindex_recorded(
    engine: MemoryEngine, reopen: Any
) -> None:
    await engine.users.register(user_id=101, username="alice")
    await engine.writes.save_many(space_id=101, texts=[f"fact {i}" for i in range(70)])
    before = [h.memory.id for h in await engine.reads.recall(space_id=101, query="fact 7")]
    assert await engine.index.reindex() == 70
    fresh: MemoryEngine = await reopen()  # reads the generation from SQL, opens its Chroma
    assert fresh.index.generation == 2
    assert not (await fresh.index.check()).drift
    after = [h.memory.id for h in await fresh.reads.recall(space_id=101, query="fact 7")]
    assert after == before
