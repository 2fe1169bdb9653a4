"""Polling intake: store each getUpdates batch in the inbox, then confirm it to Telegram.

Nothing is confirmed that is not stored: the offset moves past a batch only after its
updates are in the SQL inbox. While SQL is down the batch is held in memory and retried;
chats whose message waits longer than `DELAY_NOTICE_S` are told once that it is kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import warnings
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from telegram import Update
from telegram.error import RetryAfter, TelegramError
from telegram.warnings import PTBUserWarning

from bot.context import Bot
from bot.inbox_worker import DELAYED
from bot.lanes import chat_in, lane_of
from bot.logsafe import describe_error
from engine.breaker import Breakers, store_of
from engine.inbox import Inbox, Received
from engine.metrics import UPDATES_RECEIVED
from engine.waiting import settle, wait_set

__all__ = ["POLL_TIMEOUT_S", "PollingIntake", "seconds"]

log = logging.getLogger("memorybot.intake")
# We fetch getUpdates raw on purpose: one update PTB cannot parse must not block the others.
warnings.filterwarnings("ignore", message=r".*Bot\.getUpdates.*", category=PTBUserWarning)
POLL_TIMEOUT_S = 10


class PollingIntake:
    """getUpdates long polling into the inbox.

    `store` writes a batch (default: the inbox's own); the runner passes the worker's, which
    claims in the same transaction and starts the lanes of what it leased.
    """

    def __init__(
        self,
        bot: Bot,
        inbox: Inbox,
        breakers: Breakers,
        *,
        store: Callable[[Sequence[Received]], Awaitable[int]] | None = None,
        poll_timeout_s: int = POLL_TIMEOUT_S,
        delay_notice_s: float = 5.0,
    ) -> None:
        self.bot = bot
        self.inbox = inbox
        self.breakers = breakers
        self.store = inbox.store if store is None else store  # the worker's claims too
        self.poll_timeout_s = poll_timeout_s
        self.delay_notice_s = delay_notice_s
        self.stopping = asyncio.Event()
        self.offset: int | None = None

    def stop(self) -> None:
        """Stop polling; the batch in hand is stored and confirmed first (SIGTERM)."""
        self.stopping.set()

    async def run(self) -> None:
        """Poll until stopped; raises only on a bug (the supervisor restarts it)."""
        failures = 0
        while not self.stopping.is_set():
            try:
                raw = await self._poll()
                failures = 0
            except RetryAfter as error:
                await self._pause(seconds(error.retry_after))
                continue
            except Exception as error:  # network, server, or a reply we cannot read: retry
                failures += 1
                log.warning("getUpdates failed (%d): %s", failures, describe_error(error))
                await self._pause(min(30.0, 0.5 * 2**failures))
                continue
            if raw is None:
                break
            if raw:
                if not await self._store(raw):
                    break  # stopping while SQL is down: unconfirmed, Telegram redelivers
                self.offset = max(int(item["update_id"]) for item in raw) + 1
        await self._confirm()

    async def _store(self, raw: list[dict[str, Any]]) -> bool:
        """Keep trying until the batch is in the inbox; False if asked to stop meanwhile
        (the batch stays unconfirmed and Telegram delivers it again)."""
        held_since = time.monotonic()
        told: set[int] = set()
        failures = 0
        while True:
            try:
                UPDATES_RECEIVED.inc(await self.store(received(raw, told)))
                self.breakers.sql.success()
                break
            except Exception as error:
                failures += 1
                log.warning("inbox store failed (%d): %s", failures, describe_error(error))
                if store_of(error) is not None:
                    self.breakers.sql.failure(error)
            if time.monotonic() - held_since >= self.delay_notice_s:
                await self._tell_waiting(raw, told)
            await self._pause(min(5.0, 0.2 * 2**failures))
            if self.stopping.is_set():
                return False
        return True

    async def _tell_waiting(self, raw: list[dict[str, Any]], told: set[int]) -> None:
        """Tell the batch's chats that their messages wait (unless told already in this
        wait, by us or by the worker); `told` gets them all, so that their rows are stored
        as told."""
        chats = {c for c in map(chat_in, raw) if c is not None} - told
        told.update(chats)
        for chat_id in self.inbox.tell_once(chats):
            with contextlib.suppress(TelegramError):
                await self.bot.send_message(chat_id, DELAYED)

    async def _poll(self) -> list[dict[str, Any]] | None:
        """One getUpdates as raw JSON; None when stop was requested while waiting."""
        params: dict[str, Any] = {
            "timeout": self.poll_timeout_s,
            "allowed_updates": Update.ALL_TYPES,
        }
        if self.offset is not None:
            params["offset"] = self.offset
        fetch = asyncio.ensure_future(
            self.bot.do_api_request(
                "getUpdates", api_kwargs=params, read_timeout=self.poll_timeout_s + 10
            )
        )
        stop = asyncio.ensure_future(self.stopping.wait())
        try:
            done, _ = await asyncio.wait({fetch, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            if not fetch.done():
                fetch.cancel()
        if fetch not in done:
            await settle(fetch)  # its cancellation or error is not ours to raise
            return None
        return [item for item in fetch.result() if isinstance(item, dict) and "update_id" in item]

    async def _pause(self, seconds: float) -> None:
        await wait_set(self.stopping, seconds)

    async def _confirm(self) -> None:
        """Tell the server the last stored batch is ours (offset past it)."""
        if self.offset is None:
            return
        with contextlib.suppress(TelegramError):
            await self.bot.get_updates(offset=self.offset, timeout=0, limit=1)


def received(raw: list[dict[str, Any]], told: set[int]) -> list[Received]:
    """The batch as inbox rows; those of chats in `told` are stored as told already (the
    worker does not tell them again while they wait)."""
    return [
        Received(int(item["update_id"]), lane_of(item), item, notified=chat_in(item) in told)
        for item in raw
    ]


def seconds(value: Any) -> float:
    """RetryAfter.retry_after is an int or a timedelta depending on PTB settings."""
    return float(value.total_seconds()) if hasattr(value, "total_seconds") else float(value)
