"""A vector generation keeps the shard count it was built with (real Chroma, both databases):
the count is recorded in SQL, a start with another CHROMA_SHARDS keeps it, and only a reindex
builds the next generation with the new count, which a running engine follows."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from engine.app import MemoryEngine, open_engine
from engine.index_shards import LEGACY_SHARDS, SHARDS_KEY, unrecorded_shards
from engine.settings import Settings
from storage.embedder import Embedder
from storage.vector_types import VectorRecord
from storage.vectors import ChromaIndex

SPACES = range(-210, -200)  # ten group spaces: they spread over every shard of 4, and of 3


async def seeded(engine: MemoryEngine) -> dict[int, list[str]]:
    """Three memories in each space; what recall answers in each, by id."""
    for space in SPACES:
        await engine.writes.save_many(
            space_id=space, texts=[f"space {space} note {i} about boats" for i in range(3)]
        )
    return await answers(engine)


async def answers(engine: MemoryEngine) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    for space in SPACES:
        hits = await engine.reads.recall(space_id=space, query="boats")
        found[space] = sorted(str(hit.memory.id) for hit in hits)
    return found


async def record(engine: MemoryEngine) -> dict[str, int] | None:
    async with engine.stores.reading() as repos:
        raw = await repos.kv.get(SHARDS_KEY)
    return None if raw is None else dict(json.loads(raw))


def chroma(engine: MemoryEngine) -> ChromaIndex:
    index = engine.stores.vectors
    assert isinstance(index, ChromaIndex)
    return index


async def test_a_start_with_another_count_keeps_the_recorded_one(
    engine: MemoryEngine, settings: Settings, real_encode: Callable[[list[str]], np.ndarray]
) -> None:
    assert await record(engine) == {"generation": 1, "shards": 4}
    before = await seeded(engine)
    other = settings.model_copy(update={"chroma_shards": 3})
    reopened = await open_engine(other, embedder=Embedder(real_encode))
    try:
        assert chroma(reopened).shards == 4
        assert await answers(reopened) == before
        await reopened.writes.save(space_id=-205, text="a fourth note about boats")
        assert not (await reopened.index.check()).drift
        assert await record(reopened) == {"generation": 1, "shards": 4}
    finally:
        await reopened.aclose()


async def test_reindex_applies_a_new_count_and_a_running_engine_follows_it(
    engine: MemoryEngine, settings: Settings, real_encode: Callable[[list[str]], np.ndarray]
) -> None:
    before = await seeded(engine)
    other = settings.model_copy(update={"chroma_shards": 3})
    elsewhere = await open_engine(other, embedder=Embedder(real_encode), upgrade=False)
    try:
        assert await elsewhere.index.reindex() == 30
        assert await record(elsewhere) == {"generation": 2, "shards": 3}
        assert set(chroma(elsewhere)._names()) == {
            f"memories-g2-s{shard:03d}" for shard in range(3)
        }
        assert await answers(elsewhere) == before
        assert await engine.index.follow_generation()
        assert chroma(engine).shards == 3
        saved = await engine.writes.save(space_id=-205, text="written after the switch")
        assert not (await elsewhere.index.check()).drift
        hits = await elsewhere.reads.recall(space_id=-205, query="written after the switch")
        assert hits[0].memory.id == saved.memory.id
    finally:
        await elsewhere.aclose()


async def test_a_store_from_before_the_record_keeps_the_count_it_was_built_with(
    settings: Settings, real_encode: Callable[[list[str]], np.ndarray]
) -> None:
    first = await open_engine(settings, embedder=Embedder(real_encode))
    try:
        before = await seeded(first)
        async with first.stores.unit_of_work("forget_record") as uow:
            await uow.kv.delete_keys([SHARDS_KEY])
    finally:
        await first.aclose()
    reopened = await open_engine(settings, embedder=Embedder(real_encode))  # CHROMA_SHARDS=4
    try:
        assert await record(reopened) == {"generation": 1, "shards": 4}
        assert await answers(reopened) == before
    finally:
        await reopened.aclose()


def test_an_unrecorded_count_is_the_setting_or_the_old_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CHROMA_SHARDS", raising=False)
    default = Settings(_env_file=None)  # type: ignore[call-arg]
    assert unrecorded_shards(default, has_memories=False) == default.chroma_shards
    assert unrecorded_shards(default, has_memories=True) == LEGACY_SHARDS
    chosen = Settings(_env_file=None, chroma_shards=7)  # type: ignore[call-arg]
    assert unrecorded_shards(chosen, has_memories=True) == 7
    monkeypatch.setenv("CHROMA_SHARDS", "5")
    assert unrecorded_shards(Settings(_env_file=None), has_memories=True) == 5  # type: ignore[call-arg]


async def test_dropping_a_generation_removes_leftovers_of_another_count(tmp_path: Path) -> None:
    index = ChromaIndex.open(path=tmp_path / "chroma", url=None, base="left", shards=4)
    try:
        index.set_shards(2, 6)  # an interrupted reindex with six shards
        vector = np.ones(8, dtype=np.float32)
        await index.upsert(
            [VectorRecord(f"v{s}", s, vector, 0, "d") for s in range(6)], generation=2
        )
        index.set_shards(2, 3)  # the next attempt with three
        await index.upsert([VectorRecord("w", 1, vector, 0, "d")])  # generation 1 is untouched
        await index.drop_generation(2)
        assert set(index._names()) == {"left-g1-s001"}
        assert await index.count() == 1
    finally:
        index.close()
