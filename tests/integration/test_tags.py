"""#tags on both databases and real Chroma: rows, vector metadata, every write path, counts."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import update

from engine.app import MemoryEngine
from engine.memory import Memory
from engine.vector_index import VectorIndex
from storage.filters import MemoryFilter
from storage.models import MemoryRow, utcnow
from storage.vector_types import VectorRecord, VectorRef
from storage.vectors import ChromaIndex
from tests.fakes.vector_index import InMemoryVectorIndex

ALICE, BOB, GROUP = 101, 202, -1001


async def tag_rows(engine: MemoryEngine, memory_id: uuid.UUID) -> list[str]:
    async with engine.stores.reading() as repos:
        return await repos.tags.of(memory_id)


async def all_tag_rows(engine: MemoryEngine) -> int:
    async with engine.stores.reading() as repos:
        return await repos.tags.count_all()


async def vector_tags(engine: MemoryEngine, memory: Memory) -> tuple[str, ...]:
    [record] = await engine.stores.vectors.fetch([VectorRef(str(memory.id), memory.space_id)])
    return record.tags


async def backdate(engine: MemoryEngine, memory_id: uuid.UUID, when: datetime) -> None:
    async with engine.stores.unit_of_work("test_backdate") as uow:
        await uow.session.execute(
            update(MemoryRow).where(MemoryRow.id == memory_id).values(created_at=when)
        )


async def test_save_writes_tags_to_sql_and_vector(engine: MemoryEngine) -> None:
    await engine.users.register(user_id=ALICE)
    saved = await engine.writes.save(space_id=ALICE, text="#Work standup at 10 #работа C# talk")
    assert saved.memory.tags == ("work", "работа")
    assert sorted(await tag_rows(engine, saved.memory.id)) == ["work", "работа"]
    assert await vector_tags(engine, saved.memory) == ("work", "работа")
    again = await engine.reads.get(space_id=ALICE, memory_id=saved.memory.id)
    assert again.tags == ("work", "работа")  # memories.tags (JSON) holds them too
    plain = await engine.writes.save(space_id=ALICE, text="no tags here")
    assert await tag_rows(engine, plain.memory.id) == []
    assert await vector_tags(engine, plain.memory) == ()
    assert not (await engine.index.check()).drift


async def test_save_many_writes_tags(engine: MemoryEngine) -> None:
    await engine.users.register(user_id=ALICE)
    saved = await engine.writes.save_many(
        space_id=ALICE, texts=[f"note {i} #bulk #n{i % 3}" for i in range(70)]
    )
    assert await all_tag_rows(engine) == 140
    assert await tag_rows(engine, saved[4].memory.id) == ["bulk", "n1"]
    assert await engine.reads.tags(space_id=ALICE) == [
        ("bulk", 70),
        ("n0", 24),
        ("n1", 23),
        ("n2", 23),
    ]


async def test_edit_replaces_tags_everywhere(engine: MemoryEngine) -> None:
    await engine.users.register(user_id=ALICE)
    saved = await engine.writes.save(space_id=ALICE, text="pack #trip #passport")
    edited = await engine.writes.edit(
        space_id=ALICE, memory_id=saved.memory.id, text="pack #Trip #visa"
    )
    assert edited.tags == ("trip", "visa")
    assert sorted(await tag_rows(engine, saved.memory.id)) == ["trip", "visa"]
    assert await vector_tags(engine, edited) == ("trip", "visa")
    untagged = await engine.writes.edit(space_id=ALICE, memory_id=saved.memory.id, text="pack")
    assert await tag_rows(engine, saved.memory.id) == []
    assert await vector_tags(engine, untagged) == ()  # the old metadata value is gone
    assert await engine.reads.tags(space_id=ALICE) == []
    assert not (await engine.index.check()).drift


async def test_edit_by_source_replaces_tags(engine: MemoryEngine) -> None:
    await engine.users.register(user_id=ALICE)
    saved = await engine.writes.save(space_id=ALICE, text="#a first", chat_id=ALICE, message_id=7)
    edited = await engine.writes.edit_by_source(
        author_id=ALICE, chat_id=ALICE, message_id=7, text="#b second"
    )
    assert edited is not None
    assert await tag_rows(engine, saved.memory.id) == ["b"]


@pytest.mark.dates
async def test_forget_forget_all_and_expiry_delete_tag_rows(engine: MemoryEngine) -> None:
    await engine.users.register(user_id=ALICE)
    await engine.users.register(user_id=BOB)
    one = await engine.writes.save(space_id=ALICE, text="#x one")
    await engine.writes.save(space_id=ALICE, text="#x #y two")
    await engine.writes.save(space_id=BOB, text="#x bob's")
    soon = utcnow() + timedelta(seconds=1)
    await engine.writes.save(space_id=BOB, text="#gone soon", expires_at=soon)
    assert await all_tag_rows(engine) == 5
    await engine.writes.forget(space_id=ALICE, memory_id=one.memory.id)
    assert await all_tag_rows(engine) == 4
    await engine.writes.forget_all(space_id=ALICE)
    assert await all_tag_rows(engine) == 2  # Bob's stay
    async with engine.stores.unit_of_work("test_expire_now") as uow:
        await uow.session.execute(
            update(MemoryRow)
            .where(MemoryRow.space_id == BOB, MemoryRow.expires_at.is_not(None))
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    assert [m.text for m in await engine.writes.expire_due()] == ["#gone soon"]
    assert await all_tag_rows(engine) == 1
    assert await engine.reads.tags(space_id=BOB) == [("x", 1)]


@pytest.mark.dates
async def test_counts_are_per_space_and_skip_expired(engine: MemoryEngine) -> None:
    await engine.users.register(user_id=ALICE)
    for text in ("#work a", "#work b", "#home c", "#zoo #work d"):
        await engine.writes.save(space_id=ALICE, text=text)
    await engine.writes.save(space_id=GROUP, author_id=ALICE, text="#team #work group note")
    await engine.writes.save(
        space_id=ALICE, text="#expired e", expires_at=utcnow() + timedelta(seconds=1)
    )
    async with engine.stores.unit_of_work("test_expire_now") as uow:
        await uow.session.execute(
            update(MemoryRow)
            .where(MemoryRow.expires_at.is_not(None))
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    assert await engine.reads.tags(space_id=ALICE) == [("work", 3), ("home", 1), ("zoo", 1)]
    assert await engine.reads.tags(space_id=GROUP) == [("team", 1), ("work", 1)]


async def test_page_and_recall_filter_by_tag_and_time(engine: MemoryEngine) -> None:
    await engine.users.register(user_id=ALICE)
    old = await engine.writes.save(space_id=ALICE, text="#trip passport is in the blue drawer")
    new = await engine.writes.save(space_id=ALICE, text="#trip passport photo appointment")
    await engine.writes.save(space_id=ALICE, text="#work passport for the visa office")
    await backdate(engine, old.memory.id, datetime(2026, 3, 10, 12, tzinfo=UTC))
    page = await engine.reads.page(space_id=ALICE, wanted=MemoryFilter(tags=("trip",)))
    assert [m.id for m in page.items] == [new.memory.id, old.memory.id]
    assert page.total == 2
    march = MemoryFilter(
        since=datetime(2026, 3, 1, tzinfo=UTC), until=datetime(2026, 4, 1, tzinfo=UTC)
    )
    page = await engine.reads.page(space_id=ALICE, wanted=march)
    assert [m.id for m in page.items] == [old.memory.id]
    hits = await engine.reads.recall(
        space_id=ALICE, query="passport", wanted=MemoryFilter(tags=("trip",))
    )
    assert {h.memory.id for h in hits} == {old.memory.id, new.memory.id}
    both = MemoryFilter(tags=("trip",), since=march.since, until=march.until)
    hits = await engine.reads.recall(space_id=ALICE, query="passport", wanted=both)
    assert [h.memory.id for h in hits] == [old.memory.id]


async def test_reindex_and_sweep_keep_tags_without_drift(engine: MemoryEngine) -> None:
    await engine.users.register(user_id=ALICE)
    saved = await engine.writes.save(space_id=ALICE, text="#keep this tag")
    assert not (await engine.index.check()).drift
    await engine.index.reindex()
    assert await vector_tags(engine, saved.memory) == ("keep",)
    result = await engine.index.sweep(grace_s=0)
    assert result.rewritten == 0
    assert result.reembedded == 0
    assert not (await engine.index.check()).drift


@pytest.fixture(params=["fake", "embedded", "server"])
async def index(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[VectorIndex]:
    """Each vector index implementation (the server one with collections of its own)."""
    opened: VectorIndex
    if request.param == "fake":
        opened = InMemoryVectorIndex(shards=2)
    elif request.param == "embedded":
        opened = ChromaIndex.open(path=tmp_path / "chroma", url=None, base="tags", shards=2)
    else:
        url: str = request.getfixturevalue("chroma_server")
        opened = ChromaIndex.open(path=None, url=url, base=f"t{uuid.uuid4().hex[:8]}", shards=2)
    yield opened
    await opened.drop_generation(1)
    opened.close()


async def test_vector_tags_are_written_replaced_and_cleared(index: VectorIndex) -> None:
    embedding = np.ones(8, dtype=np.float32)
    ref = VectorRef(str(uuid.uuid4()), 5)
    record = VectorRecord(ref.id, 5, embedding, 0, "d", ("work", "работа"))
    await index.upsert([record])
    assert [r.tags for r in await index.fetch([ref])] == [("work", "работа")]
    assert [m.tags for m in await index.scan(5)] == [("work", "работа")]
    await index.upsert([VectorRecord(ref.id, 5, embedding, 0, "d", ("trip",))])
    assert [r.tags for r in await index.fetch([ref])] == [("trip",)]
    await index.upsert([VectorRecord(ref.id, 5, embedding, 0, "d")])
    assert [r.tags for r in await index.fetch([ref])] == [()]  # no stale tags left behind
