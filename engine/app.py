"""The composition root: builds the engine from settings (the bot and the CLI both use it)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from engine.admin import AdminService
from engine.broadcasts import BroadcastService
from engine.consistency import active_generation
from engine.quotas import QuotaService
from engine.service import MemoryService
from engine.settings import Settings
from engine.uow import Faults
from engine.users import UserService
from storage import migrate
from storage.db import Database, open_database
from storage.embedder import Embedder, sentence_transformer_encoder
from storage.vectors import ChromaStore

log = logging.getLogger("memorybot.engine")


@dataclass
class MemoryEngine:
    settings: Settings
    db: Database
    embedder: Embedder
    memories: MemoryService
    users: UserService
    admin: AdminService
    quotas: QuotaService
    broadcasts: BroadcastService

    async def aclose(self) -> None:
        """Stop background batching and release the stores (PTB post_shutdown calls this)."""
        await self.memories.aclose()
        await self.embedder.aclose()
        self.memories.vectors.close(wait=False)
        await self.db.dispose()


def build_embedder(settings: Settings) -> Embedder:
    """The real model, loaded once per process from the installed package."""
    encode = sentence_transformer_encoder(
        settings.embedding_model, batch_size=settings.embed_batch_size
    )
    return Embedder(
        encode, max_batch=settings.embed_batch_size, wait_ms=settings.embed_batch_wait_ms
    )


async def open_engine(
    settings: Settings,
    *,
    embedder: Embedder | None = None,
    faults: Faults | None = None,
    upgrade: bool = True,
) -> MemoryEngine:
    """Open the database (migrating it unless `upgrade` is False), Chroma and the model."""
    db = open_database(settings.database_url)
    if upgrade:
        await migrate.upgrade(db.write_engine)
    vectors = ChromaStore.open(
        path=settings.chroma_path,
        url=settings.chroma_url,
        base=settings.chroma_collection,
        shards=settings.chroma_shards,
        generation=await active_generation(db),
    )
    embedder = embedder or build_embedder(settings)
    memories = MemoryService(
        db=db, vectors=vectors, embedder=embedder, settings=settings, faults=faults
    )
    users = UserService(db=db, admin_ids=settings.admin_user_ids)
    log.info(
        "engine open db=%s chroma=%s", db.dialect, "server" if settings.chroma_url else "embedded"
    )
    return MemoryEngine(
        settings,
        db,
        embedder,
        memories,
        users,
        AdminService(db=db),
        QuotaService(db=db, settings=settings),
        BroadcastService(db=db),
    )
