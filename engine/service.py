"""MemoryService: the one entry point to memories, assembled from its paths."""

from __future__ import annotations

from engine.changes import ChangeOps
from engine.reads import ReadOps
from engine.repair import RepairOps
from engine.saves import SaveOps


class MemoryService(SaveOps, ChangeOps, ReadOps, RepairOps):
    """Save, edit, forget, get, list, recall, check, sweep, repair and reindex memories.

    Every write follows flush → vector write → commit through a UnitOfWork; SQL is the source
    of truth and Chroma never keeps what SQL does not (see docs in `engine.uow`).
    """

    async def aclose(self) -> None:
        await self._save_queue.aclose()
