"""The `VectorIndex` contract, held against the in-memory fake, embedded Chroma and the server."""

from __future__ import annotations

import contextlib
import math
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

import storage.vectors
from engine.vector_index import Vector, VectorIndex, VectorRecord, VectorRef
from storage.vectors import ChromaIndex
from tests.fakes.vector_index import InMemoryVectorIndex

SHARDS = 4  # spaces 1 and 5 share shard 1, space 2 is alone in shard 2
DIM = 8
QUERY: Vector = np.eye(DIM, dtype=np.float32)[0]


def toward(similarity: float, axis: int = 1) -> Vector:
    """A unit vector whose cosine with QUERY is `similarity` (it leans towards `axis`)."""
    vector = np.zeros(DIM, dtype=np.float32)
    vector[0], vector[axis] = similarity, math.sqrt(1.0 - similarity**2)
    return vector


def noise(seed: int) -> Vector:
    """A deterministic random unit vector."""
    vector = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return vector / np.linalg.norm(vector)


def rec(id_: str, space_id: int, embedding: Vector, digest: str = "d1") -> VectorRecord:
    return VectorRecord(id_, space_id, embedding, created_at=1_700_000_000, digest=digest)


def refs(*records: VectorRecord) -> list[VectorRef]:
    return [r.ref for r in records]


async def ids_of(index: VectorIndex, *wanted: VectorRef) -> set[str]:
    return {r.id for r in await index.fetch(list(wanted))}


async def top(index: VectorIndex, space_id: int, k: int, space_count: int) -> list[str]:
    hits = await index.query(space_id=space_id, embedding=QUERY, k=k, space_count=space_count)
    return [hit.id for hit in hits]


@pytest.fixture(params=["fake", "embedded", "server"])
async def index(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[VectorIndex]:
    """One implementation per run; the server one gets collections of its own."""
    opened: VectorIndex
    if request.param == "fake":
        opened = InMemoryVectorIndex(shards=SHARDS)
    elif request.param == "embedded":
        path = tmp_path / "chroma"
        opened = ChromaIndex.open(path=path, url=None, base="contract", shards=SHARDS)
    else:
        url: str = request.getfixturevalue("chroma_server")
        base = f"c{uuid.uuid4().hex[:8]}"
        opened = ChromaIndex.open(path=None, url=url, base=base, shards=SHARDS)
    yield opened
    with contextlib.suppress(RuntimeError):  # the close test already closed it
        for generation in (1, 2):
            await opened.drop_generation(generation)
    opened.close()


async def test_fetch_returns_what_upsert_wrote(index: VectorIndex) -> None:
    written = rec("a", 1, noise(1), digest="abc")
    await index.upsert([written])
    [got] = await index.fetch([written.ref])
    assert (got.id, got.space_id, got.created_at, got.digest) == ("a", 1, 1_700_000_000, "abc")
    assert got.embedding.dtype == np.float32
    np.testing.assert_allclose(got.embedding, written.embedding, rtol=1e-6)


async def test_upsert_is_idempotent_and_replaces(index: VectorIndex) -> None:
    await index.upsert([rec("a", 1, noise(1)), rec("b", 2, noise(2))])
    await index.upsert([rec("a", 1, noise(1)), rec("b", 2, noise(2))])
    assert await index.count() == 2
    await index.upsert([rec("a", 1, noise(3), digest="new")])
    [got] = await index.fetch([VectorRef("a", 1)])
    assert got.digest == "new"
    np.testing.assert_allclose(got.embedding, noise(3), rtol=1e-6)
    assert await index.count() == 2


async def test_delete_removes_and_ignores_missing(index: VectorIndex) -> None:
    a, b, c = rec("a", 1, noise(1)), rec("b", 5, noise(2)), rec("c", 2, noise(3))
    await index.upsert([a, b, c])
    await index.delete([a.ref, c.ref, VectorRef("missing", 1), VectorRef("gone", 3)])
    assert await ids_of(index, a.ref, b.ref, c.ref) == {"b"}
    assert await index.count() == 1
    await index.delete([VectorRef("missing", 2)])
    assert await index.count() == 1


async def test_fetch_returns_only_existing(index: VectorIndex) -> None:
    a, b = rec("a", 1, noise(1)), rec("b", 2, noise(2))
    await index.upsert([a, b])
    assert await ids_of(index, a.ref, VectorRef("missing", 1), b.ref) == {"a", "b"}
    assert await index.fetch([VectorRef("missing", 3)]) == []
    assert await index.fetch([]) == []


async def test_vectors_are_reached_through_their_owners_shard(index: VectorIndex) -> None:
    await index.upsert([rec("a", 1, noise(1))])
    assert await ids_of(index, VectorRef("a", 2)) == set()  # another shard: not there
    await index.delete([VectorRef("a", 2)])
    assert await ids_of(index, VectorRef("a", 1)) == {"a"}


async def test_query_returns_best_first_as_cosine(index: VectorIndex) -> None:
    sims = {"far": -0.3, "mid": 0.5, "same": 1.0, "near": 0.9, "low": 0.1}
    await index.upsert([rec(id_, 1, toward(s, 1 + i)) for i, (id_, s) in enumerate(sims.items())])
    hits = await index.query(space_id=1, embedding=QUERY, k=10, space_count=5)
    assert [hit.id for hit in hits] == ["same", "near", "mid", "low", "far"]
    for hit in hits:
        assert hit.similarity == pytest.approx(sims[hit.id], abs=1e-4)
    assert await top(index, 1, k=2, space_count=5) == ["same", "near"]


async def test_query_never_returns_another_owners_vectors(index: VectorIndex) -> None:
    mine = [rec(f"mine{i:02d}", 1, toward(0.05 * i, 1 + i % 7)) for i in range(12)]
    same_shard = [rec(f"five{i}", 5, toward(0.99, 2)) for i in range(2)]
    elsewhere = [rec(f"two{i}", 2, toward(0.99, 3)) for i in range(4)]
    await index.upsert(mine + same_shard + elsewhere)
    assert await top(index, 1, k=3, space_count=12) == ["mine11", "mine10", "mine09"]
    assert set(await top(index, 5, k=10, space_count=2)) == {"five0", "five1"}
    assert len(await top(index, 2, k=3, space_count=4)) == 3  # k is respected
    assert await top(index, 9, k=10, space_count=1) == []  # shard 1, but owns nothing


async def test_query_of_empty_index_or_owner_is_empty(index: VectorIndex) -> None:
    assert await top(index, 1, k=5, space_count=3) == []
    await index.upsert([rec("a", 1, noise(1))])
    assert await top(index, 1, k=5, space_count=0) == []
    assert await top(index, 1, k=5, space_count=1) == ["a"]


async def test_dense_owner_gets_only_theirs_in_order(index: VectorIndex) -> None:
    mine = [rec(f"m{i:02d}", 1, toward(0.02 * i, 1 + i % 7)) for i in range(30)]
    close = [rec(f"x{i}", 5, toward(0.995, 2)) for i in range(4)]
    await index.upsert(mine + close)  # space 1 holds 30 of the 34 vectors of shard 1
    assert await top(index, 1, k=5, space_count=30) == ["m29", "m28", "m27", "m26", "m25"]


async def test_dense_owner_outnumbered_near_the_query_still_gets_theirs(
    index: VectorIndex,
) -> None:
    mine = [rec(f"m{i:02d}", 1, toward(-0.5 + 0.01 * i, 1 + i % 7)) for i in range(20)]
    crowd = [rec(f"x{i:02d}", 5, toward(0.9 + 0.001 * i, 2)) for i in range(40)]
    await index.upsert(mine + crowd)  # a third of the shard, but the crowd is nearer
    assert await top(index, 1, k=3, space_count=20) == ["m19", "m18", "m17"]


async def test_scan_reports_metadata_for_one_owner_or_all(index: VectorIndex) -> None:
    before = int(time.time())
    await index.upsert([rec("a", 1, noise(1), "da"), rec("b", 5, noise(2)), rec("c", 2, noise(3))])
    after = int(time.time())
    everything = {meta.id: meta for meta in await index.scan()}
    assert sorted(everything) == ["a", "b", "c"]
    a = everything["a"]
    assert (a.space_id, a.created_at, a.digest) == (1, 1_700_000_000, "da")
    assert all(before <= meta.written_at <= after for meta in everything.values())
    assert [meta.id for meta in await index.scan(5)] == ["b"]
    assert await index.scan(3) == []


async def test_count_follows_writes(index: VectorIndex) -> None:
    assert await index.count() == 0
    await index.upsert([rec(f"r{i}", i, noise(i)) for i in range(6)])
    assert await index.count() == 6
    await index.delete([VectorRef("r0", 0), VectorRef("r5", 5)])
    assert await index.count() == 4


async def test_a_stale_cached_shard_count_does_not_hide_new_vectors(tmp_path: Path) -> None:
    """A query that counted the shard just before a concurrent write may cache a stale 0."""
    index = ChromaIndex.open(path=tmp_path / "chroma", url=None, base="stale", shards=SHARDS)
    try:
        assert await top(index, 2, k=3, space_count=0) == []
        written = rec("fresh", 2, toward(0.9))
        await index.upsert([written])
        key = (index.generation, index.shard_of(2))
        index._counts[key] = (time.monotonic(), 0, index._writes[key])  # as if after the write
        assert await top(index, 2, k=3, space_count=1) == ["fresh"]
    finally:
        index.close()


async def test_next_generation_is_built_beside_and_switched_to(index: VectorIndex) -> None:
    old, new = rec("old", 1, toward(0.5)), rec("new", 1, toward(0.9))
    assert index.generation == 1
    await index.upsert([old])
    await index.upsert([new], generation=2)
    assert (index.generation, await index.count()) == (1, 1)
    assert await ids_of(index, old.ref, new.ref) == {"old"}
    assert await top(index, 1, k=5, space_count=1) == ["old"]
    await index.switch_generation(2)
    assert (index.generation, await index.count()) == (2, 1)
    assert await ids_of(index, old.ref, new.ref) == {"new"}
    assert await top(index, 1, k=5, space_count=1) == ["new"]
    assert [meta.id for meta in await index.scan()] == ["new"]
    await index.switch_generation(1)  # the old generation is intact until dropped
    assert await ids_of(index, old.ref, new.ref) == {"old"}
    await index.switch_generation(2)
    await index.drop_generation(1)
    assert await ids_of(index, new.ref) == {"new"}
    await index.switch_generation(1)
    assert await index.count() == 0


async def test_dropping_the_current_or_an_empty_generation(index: VectorIndex) -> None:
    await index.drop_generation(7)  # never written
    await index.upsert([rec("a", 1, noise(1)), rec("b", 2, noise(2))])
    await index.drop_generation(index.generation)
    assert await index.count() == 0
    assert await index.fetch([VectorRef("a", 1)]) == []
    assert await top(index, 1, k=5, space_count=1) == []
    await index.upsert([rec("c", 1, noise(3))])  # the current generation is usable again
    assert await ids_of(index, VectorRef("c", 1)) == {"c"}
    assert await index.count() == 1


async def test_batches_split_across_shards_and_chunks(
    index: VectorIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(storage.vectors, "CALL_CHUNK", 3)
    monkeypatch.setattr(storage.vectors, "SCAN_PAGE", 7)
    records = [rec(f"r{i:02d}", i % 6, noise(i)) for i in range(40)]  # 6 spaces, 4 shards
    await index.upsert(records)
    assert await index.count() == 40
    assert await ids_of(index, *refs(*records)) == {r.id for r in records}
    scanned = [meta.id for meta in await index.scan()]
    assert sorted(scanned) == sorted(r.id for r in records)
    assert sorted(meta.id for meta in await index.scan(1)) == [
        r.id for r in records if r.space_id == 1
    ]
    await index.delete(refs(*records[:25]))
    assert await ids_of(index, *refs(*records)) == {r.id for r in records[25:]}
    assert await index.count() == 15


async def test_close_returns_at_once_and_refuses_later_work(index: VectorIndex) -> None:
    await index.upsert([rec("a", 1, noise(1))])
    started = time.monotonic()
    index.close()
    assert time.monotonic() - started < 0.5
    with pytest.raises(RuntimeError):
        await index.count()


def test_a_count_taken_while_a_write_ran_is_not_reused(tmp_path: Path) -> None:
    """A save's near-duplicate query runs beside its upsert: a shard count taken while the
    upsert ran is counted again next time, not served from the cache for COUNT_TTL_S."""
    index = ChromaIndex.open(path=tmp_path / "chroma", url=None, base="race", shards=SHARDS)
    key = (index.generation, index.shard_of(2))
    sizes = iter([5, 7])

    class Racing:
        def count(self) -> int:
            index._writes[key] += 1  # the upsert lands while the count runs
            return next(sizes)

    try:
        index._collections[key] = Racing()
        assert index._shard_count(key[1], key[0]) == 5
        assert index._shard_count(key[1], key[0]) == 7, "the racing count was reused"
    finally:
        index.close()


@pytest.mark.parametrize("exact_max", [0, 200], ids=["filtered", "exact"])
async def test_both_plans_for_a_small_space_keep_to_it_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exact_max: int
) -> None:
    """A space too small for the unfiltered plan is searched by Chroma's filter (larger
    spaces) or exactly, over the vectors the filter fetches (small ones): the same answer."""
    monkeypatch.setattr(storage.vectors, "EXACT_MAX", exact_max)
    index = ChromaIndex.open(path=tmp_path / "chroma", url=None, base="plans", shards=SHARDS)
    try:
        mine = [rec(f"mine{i:02d}", 1, toward(0.05 * i, 1 + i % 7)) for i in range(12)]
        crowd = [rec(f"five{i:02d}", 5, toward(0.99, 2 + i % 5)) for i in range(60)]
        await index.upsert(mine + crowd)  # space 1: 12 of shard 1's 72 vectors
        hits = await index.query(space_id=1, embedding=QUERY, k=3, space_count=12)
        assert [hit.id for hit in hits] == ["mine11", "mine10", "mine09"]
        assert hits[0].similarity == pytest.approx(0.55, abs=1e-4)
        assert await top(index, 9, k=10, space_count=1) == []  # shard 1, but owns nothing
    finally:
        index.close()
