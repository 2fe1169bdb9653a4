"""Telegram's send limits, kept per chat: a throttled group waits alone.

PTB's AIORateLimiter lets a group's 21st message go 3 s after the 20th, which Telegram's
sliding minute answers with a 429, and then pauses every chat for the retry time. Here each
group keeps an exact sliding window (20 sends per 60 s), all chats share the overall window
(30 per second), and a 429 pauses only the chat it came for. Time spent waiting here is
added to the current update's deadline (`bot.deadline`), since the update is not hung.
The overall window is the bot's budget: broadcasts take spare slots of it (`spare_slot`),
and with several workers each keeps to its share (`share`, from the inbox heartbeats).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from telegram.error import ChatMigrated, RetryAfter
from telegram.ext import BaseRateLimiter

from bot.deadline import extend_deadline

log = logging.getLogger("memorybot.limiter")
JSON = bool | dict[str, Any] | list[dict[str, Any]]
GROUP_PER_MINUTE = 20
# Telegram measures its minute when a message arrives, we when we send: a little margin
# keeps the 21st message from arriving 59.9 s after the first (the bench saw that 429).
GROUP_PERIOD_S = 61.0
MAX_RETRIES = 3
# What a send to an upgraded group keeps when it follows to the supergroup: a reply to a
# message or a topic of the old chat means nothing in the new one.
OLD_CHAT_ONLY = ("reply_parameters", "reply_to_message_id", "message_thread_id")
SPARE_POLL_S = 0.02  # a low-priority sender looks again this often while others wait


class SlidingWindow:
    """At most `limit` events in any `period_s` seconds; `acquire` waits for a free slot."""

    def __init__(self, limit: int, period_s: float) -> None:
        self.limit = limit
        self.period_s = period_s
        self._times: collections.deque[float] = collections.deque()
        self._lock = asyncio.Lock()
        self._waiting = 0  # callers of `acquire` that have not taken their slot yet
        self.paused_until = 0.0

    def delay(self, now: float, *, reserve: int = 0) -> float:
        """Seconds until a slot is free (0: now) with `reserve` slots still left after it."""
        while self._times and now - self._times[0] >= self.period_s:
            self._times.popleft()
        wait = self.paused_until - now
        capacity = max(self.limit - reserve, 1)
        if len(self._times) >= capacity:
            oldest_to_go = self._times[len(self._times) - capacity]
            wait = max(wait, oldest_to_go + self.period_s - now)
        return max(0.0, wait)

    async def acquire(self) -> float:
        """Take a slot, waiting if needed; returns how long it waited."""
        loop = asyncio.get_running_loop()
        waited = 0.0
        self._waiting += 1
        try:
            async with self._lock:  # in order of arrival
                while (wait := self.delay(loop.time())) > 0:
                    extend_deadline(wait)
                    await asyncio.sleep(wait)
                    waited += wait
                self._times.append(loop.time())
        finally:
            self._waiting -= 1
        return waited

    async def take_spare(self, reserve: int) -> None:
        """Take a slot at low priority: only while `reserve` slots stay free for `acquire`
        and nobody waits in `acquire` (a broadcast never holds a reply back)."""
        loop = asyncio.get_running_loop()
        while True:
            wait = self.delay(loop.time(), reserve=reserve)
            if wait <= 0 and not self._waiting:
                self._times.append(loop.time())
                return
            await asyncio.sleep(wait or SPARE_POLL_S)


class ChatRateLimiter(BaseRateLimiter[int]):
    """Overall rate across chats, an exact per-group minute window, 429s paused per chat."""

    def __init__(self, overall_per_s: int, *, group_per_minute: int = GROUP_PER_MINUTE) -> None:
        self._bot_per_s = overall_per_s  # Telegram's budget for the whole bot
        self._overall = SlidingWindow(overall_per_s, 1.0) if overall_per_s > 0 else None
        self._group_per_minute = group_per_minute
        self._chats: dict[int | str, SlidingWindow] = {}
        # Told (old chat id, new chat id) when a send met an upgraded group (see bot.migration).
        self.on_migrated: Callable[[int, int], None] = lambda old, new: None

    @property
    def per_second(self) -> int | None:
        """This process's share of the bot's sends per second (None: no limit)."""
        return None if self._overall is None else self._overall.limit

    def share(self, workers: int) -> None:
        """`workers` processes send for this bot: each keeps to its part of the budget."""
        if self._overall is not None:
            self._overall.limit = max(1, self._bot_per_s // max(workers, 1))

    @property
    def spare_per_second(self) -> int | None:
        """What `spare_slot` can reach per second (None: no limit)."""
        if self._overall is None:
            return None
        return max(1, self._overall.limit - self._reserve(self._overall))

    async def spare_slot(self) -> None:
        """Wait for a send slot that leaves a sixth of the budget to replies (broadcasts)."""
        if self._overall is not None:
            await self._overall.take_spare(reserve=self._reserve(self._overall))

    @staticmethod
    def _reserve(window: SlidingWindow) -> int:
        return max(1, window.limit // 6)

    async def initialize(self) -> None:
        """Nothing to set up."""

    async def shutdown(self) -> None:
        """Nothing to tear down."""

    def _window(self, chat_id: int | str) -> SlidingWindow:
        window = self._chats.get(chat_id)
        if window is None:
            group = isinstance(chat_id, str) or chat_id < 0
            limit = self._group_per_minute if group else 10_000  # private: only 429 pauses
            window = self._chats[chat_id] = SlidingWindow(limit, GROUP_PERIOD_S)
            if len(self._chats) > 100_000:  # forget idle chats now and then
                self._chats = {chat_id: window}
        return window

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, JSON]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> JSON:
        """Send once the chat's and the overall windows allow; retry a 429 after its pause; a
        send to a group upgraded to a supergroup goes to the supergroup instead."""
        chat_id = _chat_of(data)
        window = self._window(chat_id) if chat_id is not None else None
        for attempt in range(MAX_RETRIES + 1):
            if window is not None:
                await window.acquire()
            if self._overall is not None:
                await self._overall.acquire()
            try:
                return await callback(*args, **kwargs)
            except ChatMigrated as error:
                if not isinstance(chat_id, int) or chat_id == error.new_chat_id:
                    raise
                self.on_migrated(chat_id, error.new_chat_id)
                if not endpoint.startswith("send") or attempt == MAX_RETRIES:
                    raise  # an edit or a delete names a message of the old chat
                new = error.new_chat_id
                log.info("chat=%s was upgraded: %s goes to %s", chat_id, endpoint, new)
                for key in OLD_CHAT_ONLY:
                    data.pop(key, None)
                chat_id = data["chat_id"] = error.new_chat_id
                window = self._window(chat_id)
            except RetryAfter as error:
                if attempt == MAX_RETRIES:
                    raise
                pause = _seconds(error.retry_after) + 0.1
                log.info("429 for chat=%s %s: that chat waits %.1fs", chat_id, endpoint, pause)
                target = window or self._overall
                if target is not None:
                    loop = asyncio.get_running_loop()
                    target.paused_until = max(target.paused_until, loop.time() + pause)
                else:
                    extend_deadline(pause)
                    await asyncio.sleep(pause)
        raise AssertionError("unreachable")


def _chat_of(data: dict[str, Any]) -> int | str | None:
    chat_id = data.get("chat_id")
    if chat_id is None:
        return None
    with contextlib.suppress(ValueError, TypeError):
        return int(chat_id)
    return str(chat_id)


def _seconds(value: Any) -> float:
    return float(value.total_seconds()) if hasattr(value, "total_seconds") else float(value)
