"""One chat's lane: its leased updates processed in order, each under a deadline.

An update ends done, parked (a dead letter), or put back in the inbox: retried later when it
failed while the stores were healthy (counted), or when a store is down (not counted — an
outage is not the update's fault; see `engine.breaker`).
"""

from __future__ import annotations

import asyncio
import logging

from telegram.error import Forbidden

from bot.deadline import deadline
from bot.logsafe import describe_error
from bot.processing import Unparseable, UpdateProcessor
from engine.breaker import Breakers, store_of
from engine.inbox import Claimed, Inbox
from engine.metrics import UPDATES_PROCESSED

log = logging.getLogger("memorybot.intake")
STORE_STRIKES = 20  # store failures of one update before they count as its own attempts


class LaneRunner:
    """Runs chats' leased runs; collects what is done and what must be given back."""

    def __init__(
        self,
        processor: UpdateProcessor,
        inbox: Inbox,
        breakers: Breakers,
        *,
        deadline_s: float,
        stopping: asyncio.Event,
    ) -> None:
        self.processor = processor
        self.inbox = inbox
        self.breakers = breakers
        self.deadline_s = deadline_s
        self._stopping = stopping
        self.done: list[int] = []  # finished: marked with the next claim
        self.release: list[int] = []  # leased to us, not in any lane: given back next claim
        self._store_strikes: dict[int, int] = {}  # store failures per update (not counted)

    async def run(self, run: list[Claimed]) -> None:
        """Process one chat's run in order; stop at the first update that is put back."""
        for index, row in enumerate(run):
            handed_back = False  # `_handle` put this update back itself (retry_later)
            try:
                finished = not self._stopping.is_set() and await self._handle(row)
                handed_back = not finished and not self._stopping.is_set()
            except Exception as error:  # the inbox itself failed (SQL down)
                self.store_failed(error, f"update={row.update_id}")
                finished = False
            if not finished:
                rest = run[index + 1 :] if handed_back else run[index:]
                await self._give_back([r.update_id for r in rest])
                return

    async def _handle(self, row: Claimed) -> bool:
        """Process one update; True when it is finished (done or parked)."""
        if row.raw is None:  # migrated from the old ledger: nothing to do
            self.done.append(row.update_id)
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
            self.done.append(row.update_id)
            UPDATES_PROCESSED.inc()
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
                self.release.extend(update_ids)

    def store_failed(self, error: BaseException, what: str) -> None:
        store = store_of(error)
        log.warning("inbox %s failed: %s", what, describe_error(error))
        if store is not None:
            self.breakers.of(store).failure(error)
