"""Chroma adapter: space-sharded collections, cosine space, explicit embeddings, off the loop."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

import chromadb
import numpy as np
from chromadb.config import Settings as ChromaSettings
from chromadb.errors import NotFoundError

from storage.vector_types import Vector, VectorHit, VectorMeta, VectorRecord, VectorRef

T = TypeVar("T")
SCAN_PAGE = 5000
CALL_CHUNK = 4000  # below Chroma's max batch size
COUNT_TTL_S = 30.0
# A space holding at least this share of a shard is searched without a metadata filter and
# post-filtered: Chroma's filtered HNSW search is slow when the filter is not selective.
DENSE_SHARE = 0.25
# A space this small is searched exactly: its vectors fetched by the filter and compared here.
# Chroma's filtered HNSW search costs ~3-7x more for it, whatever the shard's size (measured:
# 25 vectors of a 22,000 shard 2.8 vs 18.7 ms; of 5,500: 1.7 vs 6.9 ms; even at ~250).
EXACT_MAX = 200


def _meta(id_: str, raw: Any) -> VectorMeta:
    raw = raw or {}
    return VectorMeta(
        id=id_,
        space_id=int(raw.get("space_id", -1)),
        created_at=int(raw.get("created_at", 0)),
        digest=str(raw.get("digest", "")),
        written_at=int(raw.get("written_at", 0)),
        tags=tuple(str(tag) for tag in raw.get("tags") or ()),
    )


def _exact(got: Any, embedding: Vector, k: int) -> list[tuple[str, float]]:
    """The `k` nearest of the fetched vectors, by exact cosine distance, nearest first."""
    if not got["ids"]:
        return []
    stored = np.asarray(got["embeddings"], dtype=np.float32)
    norms = np.linalg.norm(stored, axis=1) * float(np.linalg.norm(embedding))
    distances = 1.0 - (stored @ embedding) / np.where(norms == 0, 1.0, norms)
    order = np.argsort(distances, kind="stable")[:k]
    return [(str(got["ids"][i]), float(distances[i])) for i in order]


class ChromaIndex:
    """The vector side of every memory, spread over `shards` collections by space id.

    Sharding keeps each space's filtered search small (Chroma scans the filter's candidates).
    Each generation has its own set of collections and its own shard count (`set_shards`;
    `shards` for the generation it is opened at); the index owns the current one, and
    `reindex` builds the next beside it and then asks the index to switch.
    """

    def __init__(self, client: Any, *, base: str, shards: int, generation: int = 1) -> None:
        self._client = client
        self.base = base
        self._shards = {generation: shards}  # generation -> its shard count
        self._generation = generation
        self._collections: dict[tuple[int, int], Any] = {}  # (generation, shard) -> collection
        # same key -> (when, count, writes seen): a count taken while a write ran is not reused
        self._counts: dict[tuple[int, int], tuple[float, int, int]] = {}
        self._writes: Counter[tuple[int, int]] = Counter()  # same key -> writes so far
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="chroma")
        # Writes run inside an open SQL transaction (SQLite: holding its one write lock), so
        # they never queue behind queries: their own thread, in the order they were asked.
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chroma-write")

    @classmethod
    def open(
        cls, *, path: Path | None, url: str | None, base: str, shards: int, generation: int = 1
    ) -> ChromaIndex:
        """Connect to a Chroma server if `url` is set, else open the embedded store at `path`."""
        settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
        if url:
            parsed = urlparse(url)
            client = chromadb.HttpClient(
                host=parsed.hostname or "127.0.0.1",
                port=parsed.port or (443 if parsed.scheme == "https" else 8000),
                ssl=parsed.scheme == "https",
                settings=settings,
            )
        else:
            assert path is not None
            path.mkdir(parents=True, exist_ok=True)
            client = chromadb.PersistentClient(path=str(path), settings=settings)
        return cls(client, base=base, shards=shards, generation=generation)

    @property
    def generation(self) -> int:
        """The current generation: the one every call without `generation=` uses."""
        return self._generation

    @property
    def shards(self) -> int:
        """How many collections the current generation is spread over."""
        return self.shards_of(self._generation)

    def shards_of(self, generation: int) -> int:
        """How many collections `generation` is spread over (set, or the opening count)."""
        return self._shards.get(generation) or next(iter(self._shards.values()))

    def set_shards(self, generation: int, shards: int) -> None:
        """Spread `generation` over `shards` collections: before its first write, or before
        switching to a generation another process built with that count."""
        self._shards[generation] = shards

    def shard_of(self, space_id: int, generation: int | None = None) -> int:
        """The shard holding `space_id`'s vectors in `generation` (default: the current one)."""
        return space_id % self.shards_of(self._gen(generation))

    def collection_name(self, shard: int, generation: int | None = None) -> str:
        """The Chroma collection of `shard` in `generation` (default: the current one)."""
        return f"{self._prefix(self._gen(generation))}{shard:03d}"

    def _prefix(self, generation: int) -> str:
        return f"{self.base}-g{generation}-s"

    def _gen(self, generation: int | None) -> int:
        return self._generation if generation is None else generation

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def _write(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._writer, fn, *args)

    def _collection(self, shard: int, generation: int | None = None) -> Any:
        key = (self._gen(generation), shard)
        collection = self._collections.get(key)
        if collection is None:
            collection = self._client.get_or_create_collection(
                self.collection_name(shard, key[0]),
                metadata={"hnsw:space": "cosine"},
                embedding_function=None,
            )
            self._collections[key] = collection
        return collection

    def _batches(
        self, items: Sequence[T], user_of: Callable[[T], int], generation: int
    ) -> Iterator[tuple[int, Any, Sequence[T]]]:
        """(shard, its collection, up to CALL_CHUNK items) for every shard the spaces use."""
        grouped: dict[int, list[T]] = {}
        for item in items:
            grouped.setdefault(self.shard_of(user_of(item), generation), []).append(item)
        for shard, group in grouped.items():
            for i in range(0, len(group), CALL_CHUNK):
                yield shard, self._collection(shard, generation), group[i : i + CALL_CHUNK]

    def _upsert_sync(self, records: Sequence[VectorRecord], generation: int) -> None:
        written_at = int(time.time())
        for shard, collection, part in self._batches(records, lambda r: r.space_id, generation):
            collection.upsert(
                ids=[r.id for r in part],
                embeddings=np.stack([r.embedding for r in part]),
                metadatas=[r.metadata(written_at) for r in part],
            )
            self._writes[(generation, shard)] += 1

    async def upsert(
        self, records: Sequence[VectorRecord], *, generation: int | None = None
    ) -> None:
        """Add or replace `records` (idempotent) in `generation` (default: the current one)."""
        if records:
            await self._write(self._upsert_sync, records, self._gen(generation))

    def _delete_sync(self, refs: Sequence[VectorRef], generation: int) -> None:
        for shard, collection, part in self._batches(refs, lambda r: r.space_id, generation):
            collection.delete(ids=[r.id for r in part])
            self._writes[(generation, shard)] += 1

    async def delete(self, refs: Sequence[VectorRef]) -> None:
        """Delete the vectors at `refs` from the current generation; missing ones are ignored."""
        if refs:
            await self._write(self._delete_sync, refs, self._generation)

    def _fetch_sync(self, refs: Sequence[VectorRef], generation: int) -> list[VectorRecord]:
        found: list[VectorRecord] = []
        for _, collection, part in self._batches(refs, lambda r: r.space_id, generation):
            got = collection.get(ids=[r.id for r in part], include=["embeddings", "metadatas"])
            for id_, embedding, raw in zip(
                got["ids"], got["embeddings"], got["metadatas"], strict=True
            ):
                meta, vector = _meta(id_, raw), np.asarray(embedding, dtype=np.float32)
                found.append(
                    VectorRecord(
                        id_, meta.space_id, vector, meta.created_at, meta.digest, meta.tags
                    )
                )
        return found

    async def fetch(self, refs: Sequence[VectorRef]) -> list[VectorRecord]:
        """The stored records at `refs` that exist (embeddings included), in any order."""
        if not refs:
            return []
        return await self._run(self._fetch_sync, refs, self._generation)

    def _shard_count(self, shard: int, generation: int, at_least: int = 1) -> int:
        """The shard's size, cached; a cached figure below `at_least` (what SQL knows) is stale."""
        key = (generation, shard)
        writes, cached = self._writes[key], self._counts.get(key)
        if (
            cached
            and cached[2] == writes
            and cached[1] >= at_least
            and time.monotonic() - cached[0] < COUNT_TTL_S
        ):
            return cached[1]
        count = int(self._collection(shard, generation).count())
        self._counts[key] = (time.monotonic(), count, writes)  # stale if a write ran meanwhile
        return count

    def _query_sync(
        self, space_id: int, embedding: Vector, k: int, space_count: int, generation: int
    ) -> list[tuple[str, float]]:
        shard = self.shard_of(space_id, generation)
        collection = self._collection(shard, generation)
        shard_count = self._shard_count(shard, generation, at_least=max(space_count, 1))
        if shard_count == 0 or space_count == 0 or k <= 0:
            return []
        if space_count >= DENSE_SHARE * shard_count:  # dense space: unfiltered, then post-filter
            fetch = min(shard_count, max(k * 4, int(k * 2 * shard_count / space_count)))
            got = collection.query(
                query_embeddings=embedding[None, :],
                n_results=fetch,
                include=["distances", "metadatas"],
            )
            hits = [
                (id_, float(dist))
                for id_, dist, raw in zip(
                    got["ids"][0], got["distances"][0], got["metadatas"][0], strict=True
                )
                if raw and raw.get("space_id") == space_id
            ]
            if len(hits) >= min(k, space_count):
                return hits[:k]
        if space_count <= EXACT_MAX:
            return _exact(
                collection.get(where={"space_id": space_id}, include=["embeddings"]), embedding, k
            )
        got = collection.query(
            query_embeddings=embedding[None, :],
            n_results=min(k, shard_count),
            where={"space_id": space_id},
            include=["distances"],
        )
        return list(zip(got["ids"][0], map(float, got["distances"][0]), strict=True))

    async def query(
        self, *, space_id: int, embedding: Vector, k: int, space_count: int
    ) -> list[VectorHit]:
        """The `k` nearest vectors of one space only, best first, as cosine similarities.

        `space_count` is how many memories the space holds (from SQL); it picks the plan.
        """
        pairs = await self._run(
            self._query_sync, space_id, embedding, k, space_count, self._generation
        )
        return [VectorHit(id=id_, similarity=1.0 - dist) for id_, dist in pairs]

    def _scan_sync(self, space_id: int | None, generation: int) -> list[VectorMeta]:
        every = range(self.shards_of(generation))
        shards = every if space_id is None else [self.shard_of(space_id, generation)]
        where = None if space_id is None else {"space_id": space_id}
        found: list[VectorMeta] = []
        for shard in shards:
            collection, offset = self._collection(shard, generation), 0
            while True:
                got = collection.get(
                    where=where, include=["metadatas"], limit=SCAN_PAGE, offset=offset
                )
                found.extend(
                    _meta(i, m) for i, m in zip(got["ids"], got["metadatas"], strict=True)
                )
                if len(got["ids"]) < SCAN_PAGE:
                    break
                offset += SCAN_PAGE
        return found

    async def scan(self, space_id: int | None = None) -> list[VectorMeta]:
        """Metadata of every stored vector of one space, or of all spaces."""
        return await self._run(self._scan_sync, space_id, self._generation)

    def _count_sync(self, generation: int) -> int:
        every = range(self.shards_of(generation))
        return sum(int(self._collection(s, generation).count()) for s in every)

    async def count(self) -> int:
        """How many vectors the current generation holds."""
        return await self._run(self._count_sync, self._generation)

    def _drop_sync(self, generation: int) -> None:
        for key in [key for key in self._collections if key[0] == generation]:
            self._collections.pop(key, None)
            self._counts.pop(key, None)
            self._writes[key] += 1
        # by name: leftovers of an interrupted reindex may have another shard count
        prefix = self._prefix(generation)
        for name in self._names():
            if name.startswith(prefix) and name.removeprefix(prefix).isdigit():
                self._writes[(generation, int(name.removeprefix(prefix)))] += 1
                with contextlib.suppress(NotFoundError):  # dropped meanwhile
                    self._client.delete_collection(name)

    def _names(self) -> list[str]:
        """Every collection's name in the store (Chroma pages its list)."""
        names: list[str] = []
        while True:
            page = self._client.list_collections(limit=SCAN_PAGE, offset=len(names))
            names.extend(getattr(c, "name", c) for c in page)
            if len(page) < SCAN_PAGE:
                return names

    async def drop_generation(self, generation: int) -> None:
        """Delete every vector of `generation` (a no-op when it holds none)."""
        await self._write(self._drop_sync, generation)

    async def switch_generation(self, generation: int) -> None:
        """Make `generation` current; the previous one keeps its vectors until dropped."""
        self._generation = generation

    def close(self) -> None:
        """Stop the worker threads without waiting for them (never blocks the event loop)."""
        self._executor.shutdown(wait=False)
        self._writer.shutdown(wait=False)
