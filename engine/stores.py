"""Stores: the database, the vector index, the embedder, settings and the fault plan, as one.

Every service is given one `Stores`. Writes go through `unit_of_work` (the only place a
transaction commits); reads through `reading`, a read-only session with the same repositories.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from engine.errors import MemoryBotError
from engine.faults import Faults
from engine.index_model import (
    MODEL_KEY,
    IndexModelMismatch,
    ModelIdentity,
    backend_to_run,
    model_identity,
    recorded_model,
)
from engine.index_shards import adopt_shards, shards_to_open, warn_if_unapplied
from engine.settings import Settings
from engine.uow import UnitOfWork
from engine.vector_index import VectorIndex
from storage import migrate
from storage.db import Database, open_database
from storage.embedder import Embedder, Encode, sentence_transformer_encoder
from storage.locks import Lease as Lease  # re-exported: what `leadership` yields
from storage.locks import leader_lock
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
    model: ModelIdentity | None = None  # the embedding model this process embeds with
    auto_backend: bool = False  # EMBEDDING_BACKEND=auto: follow the index's backend (reindex)

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

    def leadership(self, job: str) -> contextlib.AbstractAsyncContextManager[Lease]:
        """A Lease inside the block: truthy while this process leads `job`; it turns falsy
        (and `lost` is set) the moment the lock's connection is gone (see storage.locks)."""
        return leader_lock(self.db, job, check_s=self.settings.leader_check_s)

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
    return Embedder(
        model_encoder(settings),
        max_batch=settings.embed_batch_size,
        wait_ms=settings.embed_batch_wait_ms,
    )


def model_encoder(settings: Settings) -> Encode:
    """The blocking encode of the settings' model and backend (with EMBEDDING_BACKEND=auto
    still unsettled: the backend of a new index)."""
    return sentence_transformer_encoder(
        settings.embedding_model,
        batch_size=settings.embed_batch_size,
        backend=backend_to_run(settings, None, has_vectors=False, rebuild=False),
        cache_path=settings.model_cache_path,
        threads=settings.embed_threads,
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
    model: ModelIdentity | None = None,
    model_check: bool = True,
    rebuild: bool = False,
) -> Stores:
    """Open the database (migrating it unless `upgrade` is False), the index and the model.

    Args:
        settings: where the stores are.
        embedder: an encoder to use instead of the real model (tests).
        vectors: a vector index to use instead of Chroma (tests).
        faults: the seams to break (tests and drills).
        upgrade: apply migrations first (and record the model if none is recorded yet).
        model: the model `embedder` stands for (default: the one the settings name).
        model_check: refuse (IndexModelMismatch) when the index was built with another
            model; False for `check` (reports it) and `reindex` (rebuilds with this one).
        rebuild: the stores are for `reindex`: with EMBEDDING_BACKEND=auto, embed with the
            backend of new indexes rather than the one the index was built with.
    """
    db = open_database(settings.database_url)
    if upgrade:
        await migrate.upgrade(db.write_engine)
    generation = await _recorded_generation(db)
    shards, recorded = await shards_to_open(db, settings, generation)
    if vectors is None:
        vectors = ChromaIndex.open(
            path=settings.chroma_path,
            url=settings.chroma_url,
            base=settings.chroma_collection,
            shards=shards,
            generation=generation,
        )
    vectors.set_shards(generation, shards)
    auto_backend = settings.embedding_backend == "auto"
    settings = await _settle_backend(settings, db, vectors, generation, rebuild=rebuild)
    stores = Stores(
        db,
        vectors,
        embedder or build_embedder(settings),
        settings,
        faults or Faults(),
        model or model_identity(settings),
        auto_backend,
    )
    if upgrade and not recorded:
        shards = await adopt_shards(stores, generation, shards)
    warn_if_unapplied(settings, generation, shards)
    try:
        await _settle_model(stores, refuse=model_check, adopt=upgrade)
    except IndexModelMismatch:
        await stores.aclose()
        raise
    return stores


async def _settle_backend(
    settings: Settings, db: Database, vectors: VectorIndex, generation: int, *, rebuild: bool
) -> Settings:
    """The settings with EMBEDDING_BACKEND=auto replaced by the backend to run (see
    `engine.index_model.backend_to_run`)."""
    if settings.embedding_backend != "auto":
        return settings
    async with db.reads() as session:
        recorded = await recorded_model(Repositories(session).kv, generation)
    has_vectors = recorded is None and not rebuild and await vectors.count() > 0
    backend = backend_to_run(settings, recorded, has_vectors=has_vectors, rebuild=rebuild)
    return settings.model_copy(update={"embedding_backend": backend})


async def _settle_model(stores: Stores, *, refuse: bool, adopt: bool) -> None:
    """Refuse a model other than the one the index was built with; record this one if the
    index has no model recorded (a store from before models were recorded adopts it)."""
    assert stores.model is not None
    generation = await stores.recorded_generation()
    async with stores.reading() as repos:
        recorded = await recorded_model(repos.kv, generation)
    if recorded is None and adopt:
        try:
            async with stores.unit_of_work("record_model") as uow:
                await uow.kv.set(MODEL_KEY, stores.model.record(generation))
        except MemoryBotError:  # another process starting now recorded it first
            pass
    elif recorded is not None and refuse and not recorded.makes_same_vectors(stores.model):
        raise IndexModelMismatch(recorded, stores.model)
