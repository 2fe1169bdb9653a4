"""The composition root: builds the engine's services on one `Stores` (bot, jobs and CLI)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from engine.admin import AdminService
from engine.broadcasts import BroadcastService
from engine.faults import Faults
from engine.index_care import LAYOUT, IndexCare
from engine.index_model import ModelIdentity
from engine.memory_reads import MemoryReads
from engine.memory_writes import MemoryWrites
from engine.quotas import QuotaService
from engine.reminders import ReminderService
from engine.settings import Settings
from engine.space_moves import SpaceMoves
from engine.stores import Stores, open_stores
from engine.users import UserService
from engine.vector_index import VectorIndex
from storage.embedder import Embedder

log = logging.getLogger("memorybot.engine")


@dataclass
class MemoryEngine:
    """Every engine service, each built on the same `Stores` (constructor injection)."""

    stores: Stores
    writes: MemoryWrites
    reads: MemoryReads
    index: IndexCare
    users: UserService
    admin: AdminService
    quotas: QuotaService
    broadcasts: BroadcastService
    reminders: ReminderService
    spaces: SpaceMoves

    @property
    def settings(self) -> Settings:
        return self.stores.settings

    @classmethod
    def on(cls, stores: Stores) -> MemoryEngine:
        """Build every service on `stores`."""
        return cls(
            stores,
            MemoryWrites(stores),
            MemoryReads(stores),
            IndexCare(stores),
            UserService(stores),
            AdminService(stores),
            QuotaService(stores),
            BroadcastService(stores),
            ReminderService(stores),
            SpaceMoves(stores),
        )

    async def aclose(self) -> None:
        """Finish the saves in hand, then release the stores (PTB post_shutdown calls this)."""
        await self.writes.aclose()
        await self.quotas.aclose()
        await self.stores.aclose()


async def open_engine(
    settings: Settings,
    *,
    embedder: Embedder | None = None,
    vectors: VectorIndex | None = None,
    faults: Faults | None = None,
    upgrade: bool = True,
    model: ModelIdentity | None = None,
    model_check: bool = True,
    rebuild: bool = False,
) -> MemoryEngine:
    """Open the stores (see `engine.stores.open_stores`) and build the engine on them.

    Raises IndexModelMismatch (with `model_check`) when the vector index was built with
    another embedding model than this start uses.

    With `upgrade`, also bring the vector index to the current layout and make
    ADMIN_USER_IDS the truth about admins (see AdminService.sync_settings_admins).
    """
    stores = await open_stores(
        settings,
        embedder=embedder,
        vectors=vectors,
        faults=faults,
        upgrade=upgrade,
        model=model,
        model_check=model_check,
        rebuild=rebuild,
    )
    log.info(
        "engine open db=%s chroma=%s",
        stores.dialect,
        "server" if settings.chroma_url else "embedded",
    )
    engine = MemoryEngine.on(stores)
    if upgrade:
        if await engine.index.upgrade_layout():
            log.info("vector index upgraded to layout=%s", LAYOUT)
        await engine.admin.sync_settings_admins(frozenset(settings.admin_user_ids))
    return engine
