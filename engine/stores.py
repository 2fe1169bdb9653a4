"""Stores: the database, the vector index, the embedder, settings and the fault plan, as one.

Every service is given one `Stores`. Writes go through `unit_of_work` (the only place a
transaction commits); reads through `reading`, a read-only session with the same repositories.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from engine.faults import Faults
from engine.settings import Settings
from engine.uow import UnitOfWork
from engine.vector_index import VectorIndex
from storage import migrate
from storage.db import Database, open_database
from storage.embedder import Embedder, sentence_transformer_encoder
from storage.locks import advisory_lock
from storage.repositories import Repositories
from storage.vectors import ChromaIndex

GENERATION_KEY = "vector_generation"


@dataclass
class Stores:
    """What every engine service works on; built once per process by `open_stores`."""

    db: Database
    vectors: VectorIndex
    embedder: Embedder
    settings: Settings
    faults: Faults = field(default_factory=Faults)

    @property
    def dialect(self) -> str:
        return self.db.dialect

    def unit_of_work(self, op: str) -> UnitOfWork:
        """A fresh unit of work (one AsyncSession, one transaction) named `op` in the log."""
        return UnitOfWork(self.db.writes, self.vectors, op=op, faults=self.faults)

    @contextlib.asynccontextmanager
    async def reading(self) -> AsyncIterator[Repositories]:
        """The repositories over a read session (it never commits anything)."""
        async with self.db.reads() as session:
            yield Repositories(session)

    def leadership(self, job: str) -> contextlib.AbstractAsyncContextManager[bool]:
        """True inside the block if this process leads `job` (see storage.locks)."""
        return advisory_lock(self.db, job)

    async def recorded_generation(self) -> int:
        """The vector generation recorded in SQL (1 before the first reindex)."""
        return await _recorded_generation(self.db)

    async def aclose(self) -> None:
        """Release the model's batcher, the vector index and the database pools."""
        await self.embedder.aclose()
        self.vectors.close()
        await self.db.dispose()


def build_embedder(settings: Settings) -> Embedder:
    """The real model, loaded once per process from the installed package."""
    encode = sentence_transformer_encoder(
        settings.embedding_model,
        batch_size=settings.embed_batch_size,
        backend=settings.embedding_backend,
        cache_path=settings.model_cache_path,
    )
    return Embedder(
        encode, max_batch=settings.embed_batch_size, wait_ms=settings.embed_batch_wait_ms
    )


async def upgrade_database(settings: Settings) -> str:
    """Apply the database migrations; returns the revision the database is at."""
    db = open_database(settings.database_url)
    try:
        await migrate.upgrade(db.write_engine)
        return str(await migrate.current_revision(db.write_engine))
    finally:
        await db.dispose()


async def _recorded_generation(db: Database) -> int:
    async with db.reads() as session:
        value = await Repositories(session).kv.get(GENERATION_KEY)
    return int(value) if value else 1


async def open_stores(
    settings: Settings,
    *,
    embedder: Embedder | None = None,
    vectors: VectorIndex | None = None,
    faults: Faults | None = None,
    upgrade: bool = True,
) -> Stores:
    """Open the database (migrating it unless `upgrade` is False), the index and the model.

    Args:
        settings: where the stores are.
        embedder: an encoder to use instead of the real model (tests).
        vectors: a vector index to use instead of Chroma (tests).
        faults: the seams to break (tests and drills).
        upgrade: apply migrations first.
    """
    db = open_database(settings.database_url)
    if upgrade:
        await migrate.upgrade(db.write_engine)
    if vectors is None:
        vectors = ChromaIndex.open(
            path=settings.chroma_path,
            url=settings.chroma_url,
            base=settings.chroma_collection,
            shards=settings.chroma_shards,
            generation=await _recorded_generation(db),
        )
    return Stores(db, vectors, embedder or build_embedder(settings), settings, faults or Faults())
