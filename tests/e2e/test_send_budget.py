"""Telegram's ~30 messages a second are the bot's, not each process's: workers split them."""

from __future__ import annotations

import asyncio
import time

from bot.limiter import ChatRateLimiter
from engine.inbox import Inbox
from engine.metrics import REGISTRY
from tests.e2e.conftest import BotUnderTest

BEAT_S = 10.0  # the worker's heartbeat: a third of the 30 s inbox lease


async def per_second_becomes(limiter: ChatRateLimiter, expected: int) -> None:
    deadline = time.monotonic() + BEAT_S * 2
    while limiter.per_second != expected:
        assert time.monotonic() < deadline, f"{limiter.per_second}/s, not {expected}/s"
        await asyncio.sleep(0.1)


async def test_each_worker_keeps_to_its_share_of_the_bots_budget(bot: BotUnderTest) -> None:
    assert bot.runtime is not None
    limiter = bot.runtime.app.bot.rate_limiter
    assert isinstance(limiter, ChatRateLimiter)
    budget = bot.settings.telegram_max_rate
    await per_second_becomes(limiter, budget)  # alone
    other = Inbox(bot.engine.stores)  # a second worker on the same stores says it runs
    await other.renew()
    await per_second_becomes(limiter, budget // 2)
    assert REGISTRY.get_sample_value("memorybot_workers_running") == 2
    assert REGISTRY.get_sample_value("memorybot_send_budget_per_second") == budget // 2
    [reply] = await bot.say(1_234, "/start")  # and the bot answers as before
    assert "I remember things for you" in (reply.text or "")
    await other.retire()  # it stopped: the whole budget is this worker's again
    await per_second_becomes(limiter, budget)
