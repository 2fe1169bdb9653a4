"""Each scheduled job as a plain async function: leader check, work, one audit + log line.

A job runs only on the instance that leads it (engine.stores.Stores.leadership: a lock on a
dedicated connection), and stops at its next safe point, between batches, the moment that
lock's connection is lost. These jobs need no claims beyond that: each is idempotent (expiry
deletes what is due, the sweep repairs what it finds still wrong, pruning and the quota reset
are single statements), so two instances briefly running one of them at once (while a lost
lock is being noticed) do the same work twice at worst, never harm. Work that must happen
once (broadcast deliveries, reminders) is claimed in SQL instead.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta

from engine.app import MemoryEngine
from engine.clock import utcnow
from engine.memory import Memory
from engine.stores import Lease

log = logging.getLogger("memorybot.jobs")
EXPIRY_BATCH = 500
Notify = Callable[[int, list[Memory]], Awaitable[None]]
Work = Callable[[Lease], Awaitable[dict[str, int]]]


@dataclass(frozen=True)
class JobOutcome:
    job: str
    ran: bool  # False: another instance holds the job's lock
    counts: dict[str, int] = field(default_factory=dict)
    ms: float = 0.0
    stopped: bool = False  # leadership was lost while it ran: stopped at a safe point

    def describe(self) -> str:
        if not self.ran:
            return f"{self.job}: skipped, another instance is running it"
        shown = ", ".join(f"{k}={v}" for k, v in self.counts.items()) or "nothing to do"
        cut = ", stopped: leadership lost" if self.stopped else ""
        return f"{self.job}: {shown} ({self.ms:.0f} ms{cut})"


async def run_job(engine: MemoryEngine, job: str, work: Work) -> JobOutcome:
    """Run `work` if this instance leads `job`; audit and log its counts and duration.

    `work` is given the lease and stops between batches once it turns falsy (leadership
    lost); the outcome then says `stopped`.
    """
    async with engine.stores.leadership(job) as lease:
        if not lease:
            log.info("job=%s outcome=skipped reason=not_leader", job)
            return JobOutcome(job, ran=False)
        started = time.perf_counter()
        counts = await work(lease)
        ms = (time.perf_counter() - started) * 1000
        outcome = JobOutcome(job, True, counts, ms, stopped=not lease)
    details = {**counts, "ms": int(outcome.ms)} | ({"stopped": 1} if outcome.stopped else {})
    async with engine.stores.unit_of_work(f"job:{job}") as uow:
        uow.audit.add(action=f"job:{job}", details=details)
    log.info(
        "job=%s outcome=%s %s ms=%.0f",
        job,
        "stopped reason=leadership_lost" if outcome.stopped else "done",
        " ".join(f"{k}={v}" for k, v in counts.items()),
        outcome.ms,
    )
    return outcome


async def expire(engine: MemoryEngine, *, notify: Notify | None = None) -> JobOutcome:
    """Delete expired memories from both stores in batches; optionally tell their owners."""

    async def work(lease: Lease) -> dict[str, int]:
        total = batches = 0
        while lease:  # between batches: stop once leadership is lost
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

    async def work(lease: Lease) -> dict[str, int]:
        return (
            await engine.index.sweep(grace_s=grace_s, keep_going=lambda: bool(lease))
        ).as_dict()

    return await run_job(engine, "sweep", work)


async def prune_intake(engine: MemoryEngine) -> JobOutcome:
    """Forget finished inbox rows older than two days (pending ones are never pruned)."""

    async def work(_lease: Lease) -> dict[str, int]:
        async with engine.stores.unit_of_work("prune_intake") as uow:
            pruned = await uow.inbox.prune(before=utcnow() - timedelta(days=2))
        return {"pruned": pruned}

    return await run_job(engine, "prune_intake", work)


async def reset_quotas(engine: MemoryEngine) -> JobOutcome:
    """The daily quota reset (counters also roll over lazily on a user's first op of a day)."""

    async def work(_lease: Lease) -> dict[str, int]:
        return {"reset": await engine.quotas.reset_daily()}

    return await run_job(engine, "reset_quotas", work)
