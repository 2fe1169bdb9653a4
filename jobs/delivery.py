"""The broadcast delivery worker: rate-limited, resumable, one leader at a time."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from engine.broadcasts import (
    BLOCKED,
    FAILED,
    SENDING,
    SENT,
    BroadcastProgress,
    BroadcastService,
    Delivery,
)
from engine.waiting import wait_set

log = logging.getLogger("memorybot.broadcast")
MAX_ATTEMPTS = 5
CONCURRENCY = 8
WINDOW_S = 1.1  # over a second: send-time jitter on a loaded box must not overfill any second


class Blocked(Exception):
    """The recipient blocked the bot or the chat is gone: never retry."""


class RetryLater(Exception):
    """The server asked us to slow down for `seconds`."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"retry after {seconds}s")
        self.seconds = seconds


Send = Callable[[int, str], Awaitable[None]]
Leadership = Callable[[str], contextlib.AbstractAsyncContextManager[bool]]
Report = Callable[[BroadcastProgress, bool], Awaitable[None]]


class SlidingWindow:
    """At most `rate` acquisitions in any window of WINDOW_S; `pause` holds everyone back."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._times: collections.deque[float] = collections.deque()
        self._lock = asyncio.Lock()
        self._resume_at = 0.0

    def pause(self, seconds: float) -> None:
        self._resume_at = max(self._resume_at, time.monotonic() + seconds)

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = time.monotonic()
                if now < self._resume_at:
                    await asyncio.sleep(self._resume_at - now)
                    continue
                if self.rate <= 0:
                    return
                while self._times and now - self._times[0] >= WINDOW_S:
                    self._times.popleft()
                if len(self._times) < self.rate:
                    self._times.append(now)
                    return
                await asyncio.sleep(WINDOW_S - (now - self._times[0]))


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
    ) -> None:
        self.leadership = leadership
        self.broadcasts = broadcasts
        self.send = send
        self.limiter = SlidingWindow(rate)
        self.report = report
        self.report_every_s = report_every_s
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()

    def wake(self) -> None:
        """A broadcast was created or cancelled: look now."""
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def run(self, *, idle_s: float = 5.0) -> None:
        """Until stopped: deliver every running broadcast, then wait for a wake-up."""
        while not self._stopping.is_set():
            for broadcast_id in reversed(await self.broadcasts.ids(status=SENDING, limit=50)):
                async with self.leadership("broadcast") as leader:
                    if leader:
                        await self.deliver(broadcast_id)
            self._wake.clear()
            await wait_set(self._wake, idle_s)

    async def deliver(self, broadcast_id: int) -> None:
        """Send what is pending for one broadcast, reporting progress every few seconds."""
        last_report = time.monotonic()
        lanes = asyncio.Semaphore(CONCURRENCY)
        while not self._stopping.is_set():
            if await self.broadcasts.status(broadcast_id) != SENDING:
                break
            batch = await self.broadcasts.pending(broadcast_id, limit=CONCURRENCY * 4)
            if not batch:
                await self.broadcasts.finish(broadcast_id)
                break
            text = (await self.broadcasts.progress(broadcast_id) or _missing(broadcast_id)).text

            async def one(delivery: Delivery, text: str = text) -> None:
                async with lanes:
                    await self._deliver_one(delivery, text)

            await asyncio.gather(*(one(d) for d in batch))
            if self.report and time.monotonic() - last_report >= self.report_every_s:
                last_report = time.monotonic()
                await self._report(broadcast_id, final=False)
        if self.report:
            await self._report(broadcast_id, final=True)

    async def _deliver_one(self, delivery: Delivery, text: str) -> None:
        attempts = delivery.attempts
        while not self._stopping.is_set():
            await self.limiter.acquire()
            if await self.broadcasts.status(delivery.broadcast_id) != SENDING:
                return  # cancelled meanwhile: not one more message
            try:
                await self.send(delivery.user_id, text)
            except Blocked as error:
                await self.broadcasts.mark(delivery, BLOCKED, error=str(error)[:500])
                return
            except RetryLater as error:
                self.limiter.pause(error.seconds)
                continue
            except Exception as error:
                attempts += 1
                if attempts >= MAX_ATTEMPTS:
                    await self.broadcasts.mark(delivery, FAILED, error=repr(error)[:500])
                    return
                await asyncio.sleep(min(10.0, 0.2 * 2**attempts))
                continue
            await self.broadcasts.mark(delivery, SENT)  # right after Telegram accepted it
            return

    async def _report(self, broadcast_id: int, *, final: bool) -> None:
        progress = await self.broadcasts.progress(broadcast_id)
        if progress is not None and self.report is not None:
            try:
                await self.report(progress, final)
            except Exception:
                log.warning("progress report failed for broadcast %s", broadcast_id, exc_info=True)


def _missing(broadcast_id: int) -> BroadcastProgress:
    raise LookupError(f"broadcast {broadcast_id} vanished")
