"""Processing the inbox: each chat in order, chats in parallel, no batch barrier.

The worker leases runs of chats from the inbox and gives each chat a lane (a task). A lane
processes its updates one by one under a deadline; done updates are marked in the same
transaction as the next claim. A store outage (see `engine.breaker`) pauses everything:
the update goes back to the inbox uncounted, and chats waiting longer than a few seconds get
one notice. A failure while the stores are healthy is retried with backoff, then parked.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections import defaultdict

from telegram.error import Forbidden, TelegramError

from bot.deadline import deadline
from bot.logsafe import describe_error
from bot.processing import Unparseable, UpdateProcessor
from engine.breaker import Breakers, store_of
from engine.inbox import DONE, Claimed, Inbox
from engine.settings import Settings

log = logging.getLogger("memorybot.intake")
DELAYED = "⏳ Saving is delayed — your message is kept and will be answered soon."
IDLE_POLL_S = 1.0
STORE_STRIKES = 20  # store failures of one update before they count as its own attempts


class InboxWorker:
    """Claims chats from the inbox and runs their updates through `processor`."""

    def __init__(
        self, processor: UpdateProcessor, inbox: Inbox, breakers: Breakers, settings: Settings
    ) -> None:
        self.processor = processor
        self.inbox = inbox
        self.breakers = breakers
        self.settings = settings
        self.deadline_s = settings.update_deadline_s
        self._lanes: dict[int, asyncio.Task[None]] = {}
        self._done: list[int] = []
        self._store_strikes: dict[int, int] = {}  # store failures per update (not counted)
        self._release: list[int] = []  # leased to us, not in any lane: given back next claim
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()

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
        try:
            while not self._stopping.is_set():
                await self._claim_round()
                await self._idle()
        finally:
            await self._drain()

    async def _claim_round(self) -> None:
        if self.breakers.open:
            await self._notify_waiting()
            return
        free = self.settings.inbox_parallel_chats - len(self._lanes)
        done, self._done = self._done, []
        release, self._release = self._release, []
        try:
            claimed = await self.inbox.finish_and_claim(done, release=release, chats=max(free, 0))
        except Exception as error:
            self._done = done + self._done  # marked next time
            self._release = release + self._release
            self._store_failed(error, "claim")
            return
        self.breakers.sql.success()
        runs: dict[int, list[Claimed]] = defaultdict(list)
        for row in claimed:
            runs[row.chat_id].append(row)
        for chat_id, run in runs.items():
            self.processor.services.conversations.hold(chat_id)
            task = asyncio.create_task(self._lane(run), name=f"lane-{chat_id}")
            self._lanes[chat_id] = task
            task.add_done_callback(functools.partial(self._lane_ended, chat_id))

    def _lane_ended(self, chat_id: int, _task: asyncio.Task[None]) -> None:
        if self.inbox.shared:  # another process may take the chat next
            self.processor.services.conversations.let_go(chat_id)
        self._lanes.pop(chat_id, None)
        self._wake.set()

    async def _idle(self) -> None:
        poll = IDLE_POLL_S if not self.breakers.open else self.settings.breaker_probe_s / 2
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=poll)
        self._wake.clear()

    async def _lane(self, run: list[Claimed]) -> None:
        for index, row in enumerate(run):
            handed_back = False  # `_handle` put this update back itself (retry_later)
            try:
                finished = not self._stopping.is_set() and await self._handle(row)
                handed_back = not finished and not self._stopping.is_set()
            except Exception as error:  # the inbox itself failed (SQL down)
                self._store_failed(error, f"update={row.update_id}")
                finished = False
            if not finished:
                rest = run[index + 1 :] if handed_back else run[index:]
                await self._give_back([r.update_id for r in rest])
                return

    async def _handle(self, row: Claimed) -> bool:
        """Process one update; True when it is finished (done or parked)."""
        if row.raw is None:  # migrated from the old ledger: nothing to do
            self._done.append(row.update_id)
            return True
        try:
            update = self.processor.parse(row.raw)
        except Unparseable as error:
            await self.processor.park(row.update_id, row.raw, error, attempts=1)
            return True
        failure: BaseException | None
        try:
            async with deadline(self.deadline_s):  # send limits extend it (bot.limiter)
                failure = await self.processor.run_once(update)
        except TimeoutError:
            log.warning("update=%s passed its %.0fs deadline", row.update_id, self.deadline_s)
            return await self._retry(row, TimeoutError("deadline"), count=True)
        if failure is None or isinstance(failure, Forbidden):
            if failure is not None:
                log.warning("update=%s not answered: %s", row.update_id, describe_error(failure))
            self.breakers.success()
            self._store_strikes.pop(row.update_id, None)
            self._done.append(row.update_id)
            self.inbox.wait_over(row.chat_id)
            return True
        store = store_of(failure)
        if store is not None:
            opened = self.breakers.of(store).failure(failure)
            strikes = self._store_strikes.get(row.update_id, 0) + 1
            self._store_strikes[row.update_id] = strikes
            if opened or strikes < STORE_STRIKES:  # an outage is not the update's fault
                log.warning("update=%s waits: %s store unavailable", row.update_id, store)
                return await self._retry(row, failure, count=False)
        return await self._retry(row, failure, count=True)

    async def _retry(self, row: Claimed, error: BaseException, *, count: bool) -> bool:
        attempt = row.attempts + 1
        if count and attempt >= self.processor.attempts:
            assert row.raw is not None
            await self.processor.park(row.update_id, row.raw, error, attempts=attempt)
            self._store_strikes.pop(row.update_id, None)
            self.inbox.wait_over(row.chat_id)
            return True
        log.warning(
            "update=%s attempt=%d failed, retried later: %s",
            row.update_id,
            attempt,
            describe_error(error),
        )
        if count:
            delay = self.processor.backoff_s * 2 ** (attempt - 1)
        else:  # the breaker decides when work resumes; this only spaces out retries
            delay = min(2.0, 0.25 * self._store_strikes.get(row.update_id, 0))
        await self.inbox.retry_later(row.update_id, delay_s=delay, count=count)
        return False

    async def _give_back(self, update_ids: list[int]) -> None:
        """Release leased updates; if SQL fails, with the next claim (the heartbeat keeps
        renewing our leases, so they would never run out on their own)."""
        if update_ids:
            try:
                await self.inbox.release(update_ids)
            except Exception:
                self._release.extend(update_ids)

    def _store_failed(self, error: BaseException, what: str) -> None:
        store = store_of(error)
        log.warning("inbox %s failed: %s", what, describe_error(error))
        if store is not None:
            self.breakers.of(store).failure(error)

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
        lease time, until stopped (supervised)."""
        interval = self.inbox.lease.total_seconds() / 3
        while not self._stopping.is_set():
            if not self.breakers.sql.is_open:
                try:
                    await self.inbox.renew()
                except Exception as error:  # an SQL blip: try again at the next beat
                    self._store_failed(error, "lease renewal")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=interval)

    async def _drain(self) -> None:
        """Let the lanes in hand finish within the grace period, then give back the rest."""
        lanes = list(self._lanes.values())
        if lanes:
            _, late = await asyncio.wait(lanes, timeout=self.settings.shutdown_grace_s)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        with contextlib.suppress(Exception):
            if self._done:
                await self.inbox.finish(self._done, status=DONE)
                self._done = []
            await self.inbox.release()
            await self.inbox.retire()
