"""Each scheduled job as a plain async function: leader check, work, one audit + log line."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta

from engine.app import MemoryEngine
from engine.clock import utcnow
from engine.memory import Memory

log = logging.getLogger("memorybot.jobs")
EXPIRY_BATCH = 500
Notify = Callable[[int, list[Memory]], Awaitable[None]]


@dataclass(frozen=True)
class JobOutcome:
    job: str
    ran: bool  # False: another instance holds the job's lock
    counts: dict[str, int] = field(default_factory=dict)
    ms: float = 0.0

    def describe(self) -> str:
        if not self.ran:
            return f"{self.job}: skipped, another instance is running it"
        shown = ", ".join(f"{k}={v}" for k, v in self.counts.items()) or "nothing to do"
        return f"{self.job}: {shown} ({self.ms:.0f} ms)"


async def run_job(
    engine: MemoryEngine, job: str, work: Callable[[], Awaitable[dict[str, int]]]
) -> JobOutcome:
    """Run `work` if this instance leads `job`; audit and log its counts and duration."""
    async with engine.stores.leadership(job) as leader:
        if not leader:
            log.info("job=%s outcome=skipped reason=not_leader", job)
            return JobOutcome(job, ran=False)
        started = time.perf_counter()
        counts = await work()
        outcome = JobOutcome(job, True, counts, (time.perf_counter() - started) * 1000)
    async with engine.stores.unit_of_work(f"job:{job}") as uow:
        uow.audit.add(action=f"job:{job}", details={**counts, "ms": int(outcome.ms)})
    log.info(
        "job=%s outcome=done %s ms=%.0f",
        job,
        " ".join(f"{k}={v}" for k, v in counts.items()),
        outcome.ms,
    )
    return outcome


async def expire(engine: MemoryEngine, *, notify: Notify | None = None) -> JobOutcome:
    """Delete expired memories from both stores in batches; optionally tell their owners."""

    async def work() -> dict[str, int]:
        total = batches = 0
        while True:
            gone = await engine.writes.expire_due(limit=EXPIRY_BATCH)
            if not gone:
                break
            total += len(gone)
            batches += 1
            if notify is not None:
                spaces: dict[int, list[Memory]] = {}
                for memory in gone:
                    spaces.setdefault(memory.space_id, []).append(memory)
                for space_id, memories in spaces.items():
                    await notify(space_id, memories)  # the space's chat: never another one
        return {"expired": total, "batches": batches}

    return await run_job(engine, "expire", work)


async def sweep(engine: MemoryEngine, *, grace_s: int | None = None) -> JobOutcome:
    """The orphan sweep, both directions (see IndexCare.sweep)."""

    async def work() -> dict[str, int]:
        return (await engine.index.sweep(grace_s=grace_s)).as_dict()

    return await run_job(engine, "sweep", work)


async def prune_intake(engine: MemoryEngine) -> JobOutcome:
    """Forget finished inbox rows older than two days (pending ones are never pruned)."""

    async def work() -> dict[str, int]:
        async with engine.stores.unit_of_work("prune_intake") as uow:
            pruned = await uow.inbox.prune(before=utcnow() - timedelta(days=2))
        return {"pruned": pruned}

    return await run_job(engine, "prune_intake", work)


async def reset_quotas(engine: MemoryEngine) -> JobOutcome:
    """The daily quota reset (counters also roll over lazily on a user's first op of a day)."""

    async def work() -> dict[str, int]:
        return {"reset": await engine.quotas.reset_daily()}

    return await run_job(engine, "reset_quotas", work)
