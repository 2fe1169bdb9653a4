"""What every part of the memory service shares: its stores, model, settings and seams."""

from __future__ import annotations

from engine.settings import Settings
from engine.uow import Faults, UnitOfWork
from storage.db import Database
from storage.embedder import Embedder
from storage.vectors import ChromaStore


class ServiceBase:
    def __init__(
        self,
        *,
        db: Database,
        vectors: ChromaStore,
        embedder: Embedder,
        settings: Settings,
        faults: Faults | None = None,
    ) -> None:
        self.db = db
        self.vectors = vectors
        self.embedder = embedder
        self.settings = settings
        self.faults = faults or Faults()

    def unit_of_work(self, op: str) -> UnitOfWork:
        """A fresh unit of work (one AsyncSession) for one write."""
        return UnitOfWork(self.db.writes, self.vectors, op=op, faults=self.faults)
