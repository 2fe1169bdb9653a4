"""Chroma adapter: user-sharded collections, cosine space, explicit embeddings, off the loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

import chromadb
import numpy as np
from chromadb.config import Settings as ChromaSettings

from storage.vector_types import Vector, VectorHit, VectorMeta, VectorRecord, VectorRef

T = TypeVar("T")
SCAN_PAGE = 5000
CALL_CHUNK = 4000  # below Chroma's max batch size
COUNT_TTL_S = 30.0
# A user holding at least this share of a shard is searched without a metadata filter and
# post-filtered: Chroma's filtered HNSW search is slow when the filter is not selective.
DENSE_SHARE = 0.25


def _chunks(items: Sequence[T]) -> list[Sequence[T]]:
    return [items[i : i + CALL_CHUNK] for i in range(0, len(items), CALL_CHUNK)]


def _meta(id_: str, raw: Any) -> VectorMeta:
    raw = raw or {}
    return VectorMeta(
        id=id_,
        user_id=int(raw.get("user_id", -1)),
        created_at=int(raw.get("created_at", 0)),
        digest=str(raw.get("digest", "")),
        written_at=int(raw.get("written_at", 0)),
    )


class ChromaStore:
    """The vector side of every memory, spread over `shards` collections by user id.

    Sharding keeps each user's filtered search small (Chroma scans the filter's candidates),
    and a `generation` in the collection names lets `reindex` build a new set beside the live one.
    """

    def __init__(self, client: Any, *, base: str, shards: int, generation: int = 1) -> None:
        self._client = client
        self.base = base
        self.shards = shards
        self.generation = generation
        self._collections: dict[int, Any] = {}
        self._counts: dict[int, tuple[float, int]] = {}
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="chroma")

    @classmethod
    def open(
        cls, *, path: Path | None, url: str | None, base: str, shards: int, generation: int = 1
    ) -> ChromaStore:
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

    def sibling(self, generation: int) -> ChromaStore:
        """A store on the same client for another generation (used by reindex)."""
        return ChromaStore(self._client, base=self.base, shards=self.shards, generation=generation)

    def shard_of(self, user_id: int) -> int:
        return user_id % self.shards

    def collection_name(self, shard: int) -> str:
        return f"{self.base}-g{self.generation}-s{shard:03d}"

    async def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))

    def _collection(self, shard: int) -> Any:
        collection = self._collections.get(shard)
        if collection is None:
            collection = self._client.get_or_create_collection(
                self.collection_name(shard),
                metadata={"hnsw:space": "cosine"},
                embedding_function=None,
            )
            self._collections[shard] = collection
        return collection

    def _by_shard(self, items: Iterable[T], user_of: Callable[[T], int]) -> dict[int, list[T]]:
        grouped: dict[int, list[T]] = {}
        for item in items:
            grouped.setdefault(self.shard_of(user_of(item)), []).append(item)
        return grouped

    def _upsert_sync(self, records: Sequence[VectorRecord]) -> None:
        written_at = int(time.time())
        for shard, group in self._by_shard(records, lambda r: r.user_id).items():
            for part in _chunks(group):
                self._collection(shard).upsert(
                    ids=[r.id for r in part],
                    embeddings=np.stack([r.embedding for r in part]),
                    metadatas=[r.metadata(written_at) for r in part],
                )
            self._counts.pop(shard, None)

    async def upsert(self, records: Sequence[VectorRecord]) -> None:
        """Add or replace `records` (idempotent)."""
        if records:
            await self._run(self._upsert_sync, records)

    def _delete_sync(self, refs: Sequence[VectorRef]) -> None:
        for shard, group in self._by_shard(refs, lambda r: r.user_id).items():
            for part in _chunks(group):
                self._collection(shard).delete(ids=[r.id for r in part])
            self._counts.pop(shard, None)

    async def delete(self, refs: Sequence[VectorRef]) -> None:
        """Delete the vectors at `refs`; missing ones are ignored."""
        if refs:
            await self._run(self._delete_sync, refs)

    def _fetch_sync(self, refs: Sequence[VectorRef]) -> list[VectorRecord]:
        found: list[VectorRecord] = []
        for shard, group in self._by_shard(refs, lambda r: r.user_id).items():
            for part in _chunks(group):
                found.extend(self._fetch_part(shard, part))
        return found

    def _fetch_part(self, shard: int, part: Sequence[VectorRef]) -> list[VectorRecord]:
        found: list[VectorRecord] = []
        got = self._collection(shard).get(
            ids=[r.id for r in part], include=["embeddings", "metadatas"]
        )
        for id_, embedding, raw in zip(
            got["ids"], got["embeddings"], got["metadatas"], strict=True
        ):
            meta = _meta(id_, raw)
            found.append(
                VectorRecord(
                    id=id_,
                    user_id=meta.user_id,
                    embedding=np.asarray(embedding, dtype=np.float32),
                    created_at=meta.created_at,
                    digest=meta.digest,
                )
            )
        return found

    async def fetch(self, refs: Sequence[VectorRef]) -> list[VectorRecord]:
        """The stored records for `refs` (those that exist), embeddings included."""
        if not refs:
            return []
        return await self._run(self._fetch_sync, refs)

    def _shard_count(self, shard: int) -> int:
        cached = self._counts.get(shard)
        if cached and time.monotonic() - cached[0] < COUNT_TTL_S:
            return cached[1]
        count = int(self._collection(shard).count())
        self._counts[shard] = (time.monotonic(), count)
        return count

    def _query_sync(self, user_id: int, embedding: Vector, k: int, user_count: int) -> list[Any]:
        collection = self._collection(self.shard_of(user_id))
        shard_count = self._shard_count(self.shard_of(user_id))
        if shard_count == 0 or user_count == 0:
            return []
        if user_count >= DENSE_SHARE * shard_count:
            fetch = min(shard_count, max(k * 4, int(k * 2 * shard_count / user_count)))
            got = collection.query(
                query_embeddings=embedding[None, :],
                n_results=fetch,
                include=["distances", "metadatas"],
            )
            hits = [
                (id_, dist)
                for id_, dist, raw in zip(
                    got["ids"][0], got["distances"][0], got["metadatas"][0], strict=True
                )
                if raw and raw.get("user_id") == user_id
            ]
            if len(hits) >= min(k, user_count):
                return hits[:k]
        got = collection.query(
            query_embeddings=embedding[None, :],
            n_results=min(k, shard_count),
            where={"user_id": user_id},
            include=["distances"],
        )
        return list(zip(got["ids"][0], got["distances"][0], strict=True))

    async def query(
        self, *, user_id: int, embedding: Vector, k: int, user_count: int
    ) -> list[VectorHit]:
        """The `k` nearest vectors of one user, best first, as cosine similarities.

        Args:
            user_id: whose vectors to search; no other user's vector is ever returned.
            embedding: the normalised query vector.
            k: how many hits at most.
            user_count: how many memories the user holds (from SQL); picks the search plan.
        """
        pairs = await self._run(self._query_sync, user_id, embedding, k, user_count)
        return [VectorHit(id=id_, similarity=1.0 - float(dist)) for id_, dist in pairs]

    def _scan_sync(self, user_id: int | None) -> list[VectorMeta]:
        shards = range(self.shards) if user_id is None else [self.shard_of(user_id)]
        where = None if user_id is None else {"user_id": user_id}
        found: list[VectorMeta] = []
        for shard in shards:
            collection = self._collection(shard)
            offset = 0
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

    async def scan(self, user_id: int | None = None) -> list[VectorMeta]:
        """Every stored vector's metadata, for one user or for all."""
        return await self._run(self._scan_sync, user_id)

    async def count(self) -> int:
        """How many vectors the current generation holds."""

        def _count() -> int:
            return sum(int(self._collection(s).count()) for s in range(self.shards))

        return await self._run(_count)

    async def drop(self) -> None:
        """Delete every collection of this generation."""

        def _drop() -> None:
            names = {self.collection_name(s) for s in range(self.shards)}
            for collection in self._client.list_collections():
                name = getattr(collection, "name", collection)
                if name in names:
                    self._client.delete_collection(name)
            self._collections.clear()
            self._counts.clear()

        await self._run(_drop)

    def close(self, *, wait: bool = True) -> None:
        """Stop the worker threads (`wait=False` from the event loop: never block it)."""
        self._executor.shutdown(wait=wait)
