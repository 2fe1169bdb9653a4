"""The reminder delivery worker: claims what is due, sends it, marks it; wakes on time.

It sleeps until the soonest reminder is due (at most POLL_S at a time) or until a reminder is
created or moved. Each chat's reminders go out in order at most one per CHAT_GAP_S (Telegram's
per-chat pace), chats in parallel; the bot's own rate limiter keeps the overall rate. A chat
that blocked the bot fails its reminder for good (no retries); a 429 waits as told (no
attempt counted); other errors are retried with backoff a few times, then a one-off reminder
fails and a recurring one moves to its next time. Claims are renewed while a batch is being
sent, and a sent reminder's mark is retried, never its send.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable

from engine.clock import utcnow
from engine.reminder_outbox import Reminder, ReminderOutbox
from jobs.sending import Blocked, RetryLater

log = logging.getLogger("memorybot.reminders")
POLL_S = 1.0
BATCH = 200
LANES = 32
CHAT_GAP_S = 1.0
MARK_RETRY_S = (0.1, 0.3, 1.0, 2.0, 5.0, 10.0)  # a sent reminder's mark, retried ~18 s
# Sends one reminder (late: more than a minute after it was due); returns the message id.
SendReminder = Callable[[Reminder, bool], Awaitable[int | None]]
__all__ = ["Blocked", "ReminderWorker", "RetryLater", "SendReminder"]


class ReminderWorker:
    """Delivers due reminders through `send`, exactly once per occurrence when nothing dies
    between a send and its mark (see engine.reminder_outbox)."""

    def __init__(self, *, outbox: ReminderOutbox, send: SendReminder) -> None:
        self.outbox = outbox
        self.send = send
        self._stopping = asyncio.Event()
        self.sent = 0

    def wake(self) -> None:
        """Look for due reminders now."""
        self.outbox.changed.set()

    def stop(self) -> None:
        """Finish the sends in hand, then return from `run`."""
        self._stopping.set()
        self.outbox.changed.set()

    async def run(self) -> None:
        """Until stopped: deliver what is due, then sleep until the next due time."""
        released = await self.outbox.release_stale()
        if released:
            log.info("reminders: %d claims of a previous run released", released)
        while not self._stopping.is_set():
            self.outbox.changed.clear()
            await self.deliver_due()
            await self._sleep()

    async def deliver_due(self) -> int:
        """Claim and send batches until nothing is due; returns how many were handled."""
        handled = 0
        while not self._stopping.is_set():
            batch = await self.outbox.claim_due(limit=BATCH)
            if not batch:
                break
            renewing = asyncio.create_task(self._renew())
            try:
                await self._send_batch(batch)
            finally:
                renewing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await renewing
            handled += len(batch)
        return handled

    async def _send_batch(self, batch: list[Reminder]) -> None:
        by_chat: dict[int, list[Reminder]] = defaultdict(list)
        for reminder in batch:
            by_chat[reminder.space_id].append(reminder)
        lanes = asyncio.Semaphore(LANES)

        async def lane(reminders: list[Reminder]) -> None:
            async with lanes:
                for index, reminder in enumerate(reminders):
                    if index:
                        await asyncio.sleep(CHAT_GAP_S)
                    await self._deliver_one(reminder)

        # Every lane finishes (and marks) before a failure is raised: a supervised restart
        # must not release claims whose sends are still in flight.
        outcomes = await asyncio.gather(
            *(lane(chat) for chat in by_chat.values()), return_exceptions=True
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    async def _deliver_one(self, reminder: Reminder) -> None:
        try:
            message_id = await self.send(reminder, reminder.late(utcnow()))
        except Blocked:
            log.info("reminder %s: chat %s is gone or blocked us", reminder.id, reminder.space_id)
            await self.outbox.mark_failed(reminder)
            return
        except RetryLater as error:  # not a failure: Telegram said how long to wait
            await self.outbox.retry_later(reminder, delay_s=error.seconds, counted=False)
            return
        except Exception as error:
            log.warning("reminder %s send failed: %s", reminder.id, type(error).__name__)
            await self.outbox.retry_later(reminder, delay_s=min(300.0, 5.0 * 2**reminder.attempts))
            return
        if await self._mark_sent(reminder, message_id):
            self.sent += 1
        else:
            log.warning("reminder %s: claim lost before its mark", reminder.id)

    async def _mark_sent(self, reminder: Reminder, message_id: int | None) -> bool:
        """Mark what Telegram accepted, retrying a failed mark while the batch's lease is
        renewed: the message is out, so it is never sent again for a store blip (only a
        process that dies here leaves it to the lease, the README's window)."""
        for delay in (*MARK_RETRY_S, None):
            try:
                return await self.outbox.mark_sent(reminder, message_id=message_id)
            except Exception as error:
                if delay is None:
                    raise
                log.warning(
                    "reminder %s sent, its mark failed (%s): retrying in %.1fs",
                    reminder.id,
                    type(error).__name__,
                    delay,
                )
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(self.outbox.lease.total_seconds() / 3)
            try:
                await self.outbox.renew()
            except Exception:
                log.warning("reminder lease renewal failed", exc_info=True)

    async def _sleep(self) -> None:
        if self._stopping.is_set():
            return
        timeout = POLL_S
        with contextlib.suppress(Exception):  # a failed read: poll again soon
            due = await self.outbox.next_due()
            if due is not None:
                timeout = min(POLL_S, max(0.0, (due - utcnow()).total_seconds()))
        if timeout <= 0:
            timeout = 0.05  # due now but not claimable (a retry's backoff): do not spin
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.outbox.changed.wait(), timeout=timeout)
