"""Memory reads on fakes (both databases): hybrid recall, ownership, expiry, paging.

Moved from tests/integration/test_engine.py. Recall *by meaning* needs the real model and
stays there (`test_recall_finds_the_passport_by_meaning`); these tests hold on any encoder.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from engine.app import MemoryEngine
from engine.clock import utcnow


async def test_recall_is_hybrid_keyword_hits_count(fake_engine: MemoryEngine, alice: int) -> None:
    await fake_engine.writes.save(space_id=alice, text="locker code 4417 at the gym")
    await fake_engine.writes.save(space_id=alice, text="call grandma on sunday")
    hits = await fake_engine.reads.recall(space_id=alice, query="4417", min_similarity=0.99)
    assert [h.memory.text for h in hits] == ["locker code 4417 at the gym"]
    assert hits[0].keyword
    assert hits[0].similarity is None


async def test_recall_sees_only_the_callers_memories(
    fake_engine: MemoryEngine, alice: int
) -> None:
    await fake_engine.writes.save(space_id=202, text="bob's passport is in the safe")
    await fake_engine.writes.save(space_id=alice, text="alice likes green tea")
    hits = await fake_engine.reads.recall(space_id=alice, query="passport", min_similarity=-1)
    assert {h.memory.space_id for h in hits} == {alice}


@pytest.mark.dates
async def test_recall_and_list_hide_expired_memories(
    fake_engine: MemoryEngine, alice: int
) -> None:
    await fake_engine.writes.save(
        space_id=alice,
        text="parking spot 42 on level B",
        expires_at=utcnow() - timedelta(seconds=1),
    )
    kept = await fake_engine.writes.save(
        space_id=alice,
        text="parking card is in the glovebox",
        expires_at=utcnow() + timedelta(days=1),
    )
    hits = await fake_engine.reads.recall(space_id=alice, query="parking spot", min_similarity=-1)
    assert [h.memory.id for h in hits] == [kept.memory.id]
    page = await fake_engine.reads.page(space_id=alice)
    assert [m.id for m in page.items] == [kept.memory.id]
    assert (await fake_engine.index.check()).expired_present == 1


async def test_list_is_paged_newest_first(fake_engine: MemoryEngine, alice: int) -> None:
    for i in range(7):
        await fake_engine.writes.save(space_id=alice, text=f"note number {i}")
    first = await fake_engine.reads.page(space_id=alice, limit=3)
    rest = await fake_engine.reads.page(space_id=alice, offset=3, limit=10)
    assert [m.text for m in first.items] == ["note number 6", "note number 5", "note number 4"]
    assert first.total == 7
    assert first.has_more
    assert not rest.has_more
    assert len(rest.items) == 4
