"""Progress reports of a broadcast being delivered: every few seconds and once at the end."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from engine.broadcast_types import BroadcastProgress
from engine.broadcasts import BroadcastService

log = logging.getLogger("memorybot.broadcast")
Report = Callable[[BroadcastProgress, bool], Awaitable[None]]


class ProgressReporter:
    """Passes a broadcast's progress to `report` (nothing happens without one)."""

    def __init__(
        self, broadcasts: BroadcastService, report: Report | None, *, every_s: float
    ) -> None:
        self.broadcasts = broadcasts
        self.report = report
        self.every_s = every_s

    async def every(self, broadcast_id: int) -> None:
        """Report every `every_s` seconds until cancelled."""
        while self.report is not None:
            await asyncio.sleep(self.every_s)
            await self.once(broadcast_id, final=False)

    async def once(self, broadcast_id: int, *, final: bool) -> None:
        """Report now; a failure is logged, never raised (delivery goes on)."""
        if self.report is None:
            return
        try:
            progress = await self.broadcasts.progress(broadcast_id)
            if progress is not None:
                await self.report(progress, final)
        except Exception:
            log.warning("progress report failed for broadcast %s", broadcast_id, exc_info=True)
