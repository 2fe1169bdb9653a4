"""Processing the inbox: each chat in order, chats in parallel, no batch barrier.

The worker leases runs of chats from the inbox and gives each chat a lane (a task). A lane
processes its updates one by one under a deadline; done updates are marked in the same
transaction as the next claim. The intake stores each batch through `store`, which claims in
the same transaction: a new update reaches its lane with no claim of its own. A store outage
(see `engine.breaker`) pauses everything: the update goes back to the inbox uncounted, and
chats waiting longer than a few seconds get one notice. A failure while the stores are
healthy is retried with backoff, then parked.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections import defaultdict
from collections.abc import Callable, Sequence

from telegram.error import TelegramError

from bot.lane_runner import LaneRunner
from bot.processing import UpdateProcessor
from engine.breaker import Breakers
from engine.inbox import DONE, Claimed, Inbox, Received
from engine.settings import Settings
from engine.waiting import wait_set

DELAYED = "⏳ Saving is delayed — your message is kept and will be answered soon."
IDLE_POLL_S = 1.0


class InboxWorker:
    """Claims chats from the inbox and runs their updates through `processor`."""

    def __init__(
        self,
        processor: UpdateProcessor,
        inbox: Inbox,
        breakers: Breakers,
        settings: Settings,
        *,
        on_workers: Callable[[int], None] | None = None,
    ) -> None:
        self.processor = processor
        self.on_workers = on_workers  # told how many workers run, at every heartbeat
        self.inbox = inbox
        self.breakers = breakers
        self.settings = settings
        self._lanes: dict[int, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._running = False  # `run` is looping: only then do lanes start (see `_drain`)
        self.runner = LaneRunner(
            processor,
            inbox,
            breakers,
            deadline_s=settings.update_deadline_s,
            stopping=self._stopping,
        )

    def wake(self) -> None:
        """New updates were stored: claim now rather than at the next poll."""
        self._wake.set()

    def stop(self) -> None:
        """Take no more work; `run` finishes the lanes in hand and returns."""
        self._stopping.set()
        self._wake.set()

    @property
    def busy(self) -> int:
        """How many chats are being processed now."""
        return len(self._lanes)

    async def run(self) -> None:
        """Claim and process until stopped; raises on an unexpected error (supervised)."""
        self._running = True
        try:
            while not self._stopping.is_set():
                await self._claim_round()
                await self._idle()
        finally:
            self._running = False  # the intake only stores until `run` is back
            await self._drain()

    async def _claim_round(self) -> None:
        if self.breakers.open:
            await self._notify_waiting()
            return
        try:
            await self.store(())
        except Exception as error:
            self.runner.store_failed(error, "claim")

    async def store(self, updates: Sequence[Received]) -> int:
        """One inbox transaction: store `updates` (the intake's batch, or none), finish, give
        back, claim; then start the lanes of what was claimed, and return how many updates
        were new. Raises what the store raised (the intake keeps its batch and tries again).

        Nothing is claimed while a breaker is open, or while `run` is not looping (before it
        starts, and while it drains after a stop or a crash: the drain gives back every lease
        this worker holds, so no lane may start meanwhile)."""
        paused = bool(self.breakers.open) or self._stopping.is_set() or not self._running
        free = 0 if paused else self.settings.inbox_parallel_chats - len(self._lanes)
        runner = self.runner
        done, runner.done = runner.done, []
        release, runner.release = runner.release, []
        try:
            new, claimed = await self.inbox.store_and_claim(
                updates, done, release=release, chats=max(free, 0)
            )
        except Exception:
            runner.done = done + runner.done  # marked next time
            runner.release = release + runner.release
            raise
        self.breakers.sql.success()
        runs: dict[int, list[Claimed]] = defaultdict(list)
        for row in claimed:
            runs[row.chat_id].append(row)
        for chat_id, run in runs.items():
            self.processor.services.conversations.hold(chat_id)
            task = asyncio.create_task(self.runner.run(run), name=f"lane-{chat_id}")
            self._lanes[chat_id] = task
            task.add_done_callback(functools.partial(self._lane_ended, chat_id))
        return new

    def _lane_ended(self, chat_id: int, task: asyncio.Task[None]) -> None:
        self._wake.set()
        if self._lanes.get(chat_id) is not task:  # the chat's next run has its lane already
            return
        if self.inbox.shared:  # another process may take the chat next
            self.processor.services.conversations.let_go(chat_id)
        del self._lanes[chat_id]

    async def _idle(self) -> None:
        poll = IDLE_POLL_S if not self.breakers.open else self.settings.breaker_probe_s / 2
        await wait_set(self._wake, poll)
        self._wake.clear()

    async def _notify_waiting(self) -> None:
        """While a store is down, tell chats whose message waits that it is kept."""
        try:
            chats = await self.inbox.waiting_chats(older_than_s=self.settings.delay_notice_s)
        except Exception:  # SQL is down too: intake tells the chats it holds
            return
        for chat_id in chats:
            with contextlib.suppress(TelegramError):
                await self.processor.app.bot.send_message(chat_id, DELAYED)

    async def heartbeat(self) -> None:
        """Renew this worker's leases (and say it is alive) at once, then every third of the
        lease time, until stopped (supervised); `on_workers` hears how many workers run."""
        interval = self.inbox.lease.total_seconds() / 3
        while not self._stopping.is_set():
            if not self.breakers.sql.is_open:
                try:
                    workers = await self.inbox.renew()
                except Exception as error:  # an SQL blip: try again at the next beat
                    self.runner.store_failed(error, "lease renewal")
                else:
                    if self.on_workers is not None:
                        self.on_workers(workers)
            await wait_set(self._stopping, interval)

    async def _drain(self) -> None:
        """Let the lanes in hand finish within the grace period, then give back the rest."""
        lanes = list(self._lanes.values())
        if lanes:
            _, late = await asyncio.wait(lanes, timeout=self.settings.shutdown_grace_s)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        with contextlib.suppress(Exception):
            if self.runner.done:
                await self.inbox.finish(self.runner.done, status=DONE)
                self.runner.done = []
            await self.inbox.release()
            await self.inbox.retire()
