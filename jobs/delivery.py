"""The broadcast delivery worker: rate-limited, resumable, one leader at a time.

Each send is preceded by a claim committed in SQL (see engine.broadcasts) and followed at once
by its owner's mark, so two workers (even two leaders at once, e.g. while a lost lock is
being noticed) never send the same delivery. The claim is taken right before the send, after
the pace allows it: between bursts this worker holds no claim, so a worker that dies there
leaves nothing to wait for. A claim is used only while a third of its lease is certainly left
(leases are renewed while sending); losing leadership or stopping ends the work between sends.
The one window left is a death after Telegram accepted a send and before its mark committed:
that message is sent again once the claim lapses (at least once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable

from engine.broadcast_types import BLOCKED, FAILED, SENDING, SENT, Delivery
from engine.broadcasts import BroadcastService
from engine.stores import Lease
from engine.waiting import wait_set
from jobs.pacing import SlidingWindow
from jobs.progress import ProgressReporter, Report
from jobs.sending import Blocked, RetryLater, Send

log = logging.getLogger("memorybot.broadcast")
MAX_ATTEMPTS = 5
CONCURRENCY = 8
CLAIM_POLL_S = 1.0  # others hold claims: look again this often (a dead worker's lapse)


Leadership = Callable[[str], contextlib.AbstractAsyncContextManager[Lease]]


class BroadcastWorker:
    """Sends pending deliveries of running broadcasts; picks up where a crash left off."""

    def __init__(
        self,
        *,
        leadership: Leadership,
        broadcasts: BroadcastService,
        send: Send,
        rate: float,
        report: Report | None = None,
        report_every_s: float = 3.0,
        owner: str | None = None,
    ) -> None:
        self.leadership = leadership
        self.broadcasts = broadcasts
        self.send = send
        self.limiter = SlidingWindow(rate)
        self.reporter = ProgressReporter(broadcasts, report, every_s=report_every_s)
        self.owner = owner or f"b-{uuid.uuid4().hex[:12]}"  # the name on this worker's claims
        self.sent = 0  # sends this worker marked sent
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._renewed_from = float("-inf")  # when the last successful renewal started

    def wake(self) -> None:
        """A broadcast was created or cancelled: look now."""
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def run(self, *, idle_s: float = 5.0) -> None:
        """Until stopped: deliver every running broadcast while leading, then wait."""
        released = await self.broadcasts.release_stale()
        if released:
            log.info("broadcast: %d claims of a previous run released", released)
        while not self._stopping.is_set():
            for broadcast_id in reversed(await self.broadcasts.ids(status=SENDING, limit=50)):
                async with self.leadership("broadcast") as lease:
                    if lease:
                        await self.deliver(broadcast_id, lease=lease)
            self._wake.clear()
            await wait_set(self._wake, idle_s)

    async def deliver(self, broadcast_id: int, *, lease: Lease | None = None) -> None:
        """Send what is left of one broadcast, reporting progress every few seconds.

        Stops between sends when the worker is stopped or `lease` (leadership) is lost;
        claims in hand that were not sent go back to the queue.
        """
        progress = await self.broadcasts.progress(broadcast_id)
        if progress is None:
            return
        renewing = asyncio.create_task(self._keep_claims())
        reporting = asyncio.create_task(self.reporter.every(broadcast_id))
        try:
            while self._going(lease):
                if await self.broadcasts.status(broadcast_id) != SENDING:
                    break
                await self._lanes(broadcast_id, progress.text, lease)
                if not self._going(lease) or await self.broadcasts.finish(broadcast_id):
                    break
                if await self.broadcasts.unfinished(broadcast_id):  # others' claims, or a retry
                    await wait_set(self._stopping, CLAIM_POLL_S)
        finally:
            for task in (renewing, reporting):
                task.cancel()
            await asyncio.gather(renewing, reporting, return_exceptions=True)
        if lease is not None and not lease:
            log.info("broadcast %s: leadership lost, stopped between sends", broadcast_id)
        else:
            await self.reporter.once(broadcast_id, final=True)

    def _going(self, lease: Lease | None) -> bool:
        return not self._stopping.is_set() and (lease is None or bool(lease))

    async def _lanes(self, broadcast_id: int, text: str, lease: Lease | None) -> None:
        """CONCURRENCY lanes, each: wait for the pace, claim one delivery, send it, mark it;
        until nothing is left to claim. Every lane ends before a failure is raised."""

        async def lane() -> None:
            while self._going(lease):
                await self.limiter.acquire()
                if not self._going(lease):
                    return
                started = time.monotonic()
                claimed = await self.broadcasts.claim(broadcast_id, owner=self.owner)
                if not claimed:
                    return
                await self._deliver_one(claimed[0], text, lease, started, time.monotonic())

        outcomes = await asyncio.gather(
            *(lane() for _ in range(CONCURRENCY)), return_exceptions=True
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    def _claim_holds(self, started: float, claimed: float) -> bool:
        """At least a third of the claim's lease is certainly left (by this clock)."""
        lease_s = self.broadcasts.lease.total_seconds()
        since = self._renewed_from if self._renewed_from > claimed else started
        return time.monotonic() < since + lease_s * 2 / 3

    async def _deliver_one(
        self, delivery: Delivery, text: str, lease: Lease | None, started: float, claimed: float
    ) -> None:
        attempts = delivery.attempts
        retry = False
        while True:
            if retry:
                await self.limiter.acquire()
                if await self.broadcasts.status(delivery.broadcast_id) != SENDING:
                    break  # cancelled meanwhile: not one more message
            retry = True
            if not self._going(lease) or not self._claim_holds(started, claimed):
                break
            try:
                await self.send(delivery.user_id, text)
            except Blocked as error:
                await self._mark(delivery, BLOCKED, error=str(error)[:500])
                return
            except RetryLater as error:
                self.limiter.pause(error.seconds)
                continue
            except Exception as error:
                attempts += 1
                if attempts >= MAX_ATTEMPTS:
                    await self._mark(delivery, FAILED, error=repr(error)[:500])
                    return
                await asyncio.sleep(min(10.0, 0.2 * 2**attempts))
                continue
            if await self._mark(delivery, SENT):  # right after Telegram accepted it
                self.sent += 1
            return
        await self.broadcasts.release(owner=self.owner, ids=[delivery.id])  # unsent

    async def _mark(self, delivery: Delivery, status: str, *, error: str | None = None) -> bool:
        marked = await self.broadcasts.mark(delivery, status, owner=self.owner, error=error)
        if not marked:
            log.warning("delivery %s: claim lost before its mark (%s)", delivery.id, status)
        return marked

    async def _keep_claims(self) -> None:
        """Renew this worker's claims well within their lease while it delivers."""
        while True:
            await asyncio.sleep(self.broadcasts.lease.total_seconds() / 4)
            started = time.monotonic()
            try:
                await self.broadcasts.renew(owner=self.owner)
            except Exception:
                log.warning("broadcast claim renewal failed", exc_info=True)
            else:
                self._renewed_from = started
