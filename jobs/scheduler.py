"""The scheduler the bot owns: APScheduler's AsyncIOScheduler with intervals from settings."""

from __future__ import annotations

import logging

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from engine.app import MemoryEngine
from engine.index_care import FOLLOW_INTERVAL_S
from jobs import runs

log = logging.getLogger("memorybot.jobs")


def build_scheduler(
    engine: MemoryEngine, *, notify: runs.Notify | None = None
) -> AsyncIOScheduler:
    """Expiry, sweep, intake pruning and the daily quota reset; one run of each at a time."""
    settings = engine.settings
    scheduler = AsyncIOScheduler(job_defaults={"coalesce": True, "max_instances": 1})

    async def expire() -> None:
        await runs.expire(engine, notify=notify if settings.expiry_notify else None)

    async def sweep() -> None:
        await runs.sweep(engine)

    async def prune() -> None:
        await runs.prune_intake(engine)

    scheduler.add_job(expire, "interval", seconds=settings.expiry_interval_s, id="expire")
    scheduler.add_job(sweep, "interval", seconds=settings.sweep_interval_s, id="sweep")

    async def reset_quotas() -> None:
        await runs.reset_quotas(engine)

    async def follow_index() -> None:
        try:
            switched = await engine.index.follow_generation()
        except Exception as error:  # SQL or Chroma unavailable: next interval tries again
            log.warning("job=follow_index outcome=failed error=%s", type(error).__name__)
            return
        if switched:
            log.info("job=follow_index switched to generation %d", engine.index.generation)

    scheduler.add_job(prune, "interval", hours=6, id="prune_intake")
    scheduler.add_job(follow_index, "interval", seconds=FOLLOW_INTERVAL_S, id="follow_index")
    scheduler.add_job(reset_quotas, "cron", hour=0, minute=0, timezone="UTC", id="reset_quotas")
    return scheduler
