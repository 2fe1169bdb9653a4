"""Quotas end to end: daily operations, stored memories, the daily reset and per-user overrides."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from botapi_emulator import BotApiEmulator, SentMessage
from engine.settings import Settings
from jobs import runs
from tests.e2e.conftest import BotUnderTest

pytestmark = pytest.mark.dates

USER, OTHER = 9_102, 9_103
DAILY_LIMIT = "⚠️ You reached your limit of {n} daily operations for today."
RESETS = "It resets at 00:00 UTC."


@contextlib.asynccontextmanager
async def running(
    settings: Settings, emulator: BotApiEmulator, **update: Any
) -> AsyncIterator[BotUnderTest]:
    """The bot on a variant of the parametrized settings (SQLite and PostgreSQL)."""
    under_test = BotUnderTest(settings.model_copy(update=update), emulator)
    await under_test.start()
    try:
        yield under_test
    finally:
        await under_test.stop()


def text_of(message: SentMessage) -> str:
    return message.text or ""


async def texts(bot: BotUnderTest, user_id: int) -> list[str]:
    page = await bot.engine.reads.page(space_id=user_id, limit=100)
    return sorted(m.text for m in page.items)


async def save(bot: BotUnderTest, user_id: int, text: str) -> str:
    [answer] = await bot.say(user_id, text)
    return text_of(answer)


async def test_daily_limit_refuses_then_the_reset_job_lifts_it(
    settings: Settings, emulator: BotApiEmulator
) -> None:
    async with running(settings, emulator, quota_daily_ops=3) as bot:
        for i in range(3):
            assert "Saved" in await save(bot, USER, f"daily note {i}: the ticket is in the jar")
        refused = await save(bot, USER, "daily note 3: one too many")
        assert refused == f"{DAILY_LIMIT.format(n=3)} {RESETS}"
        [listed] = await bot.say(USER, "/list")
        assert text_of(listed) == refused, "reads count as operations too"
        assert len(await texts(bot, USER)) == 3, "nothing was saved"

        outcome = await runs.reset_quotas(bot.engine)
        assert outcome.ran
        assert outcome.counts["reset"] >= 1
        assert "Saved" in await save(bot, USER, "daily note 4: after the reset")
        assert len(await texts(bot, USER)) == 4


async def test_memory_limit_refuses_the_third_save(
    settings: Settings, emulator: BotApiEmulator
) -> None:
    async with running(settings, emulator, quota_max_memories=2) as bot:
        first = await save(bot, USER, "the umbrella is by the door")
        assert "Saved" in first
        assert "Saved" in await save(bot, USER, "the recipe is in the blue folder")
        refused = await save(bot, USER, "the bicycle is in the garage")
        assert refused == "⚠️ You reached your limit of 2 memories stored."
        assert "limit of 2 memories" in refused
        assert await texts(bot, USER) == [
            "the recipe is in the blue folder",
            "the umbrella is by the door",
        ]
        short_id = first.split("<code>")[1].split("</code>")[0]
        [forgot] = await bot.say(USER, f"/forget {short_id}")
        assert "Forgot" in text_of(forgot)
        assert "Saved" in await save(bot, USER, "the bicycle is in the garage"), "room again"


async def test_override_lifts_the_daily_limit_for_one_user_only(
    settings: Settings, emulator: BotApiEmulator
) -> None:
    async with running(settings, emulator, quota_daily_ops=3) as bot:
        await bot.say(USER, "/start")
        await bot.engine.quotas.set_limits(user_id=USER, daily_ops=10, max_memories=None)
        for i in range(3):
            assert "Saved" in await save(bot, OTHER, f"other note {i}"), i
        refused = await save(bot, OTHER, "other note 3")
        assert refused == f"{DAILY_LIMIT.format(n=3)} {RESETS}", "others keep the default"
        assert len(await texts(bot, OTHER)) == 3

        for i in range(10):
            assert "Saved" in await save(bot, USER, f"lifted note {i}"), i
        refused = await save(bot, USER, "lifted note 10")
        assert refused == f"{DAILY_LIMIT.format(n=10)} {RESETS}"
        assert len(await texts(bot, USER)) == 10


async def test_edit_command_counts_against_the_daily_limit(
    settings: Settings, emulator: BotApiEmulator
) -> None:
    async with running(settings, emulator, quota_daily_ops=3) as bot:
        first = await save(bot, USER, "the ring is in the kitchen jar")
        short_id = first.split("<code>")[1].split("</code>")[0]
        assert "Saved" in await save(bot, USER, "the invoice is on the office desk")
        assert "Saved" in await save(bot, USER, "the charger is in the red backpack")
        [refused] = await bot.say(USER, f"/edit {short_id} the ring moved")
        assert text_of(refused) == f"{DAILY_LIMIT.format(n=3)} {RESETS}"
        assert "the ring is in the kitchen jar" in await texts(bot, USER)


async def test_message_edit_counts_against_the_daily_limit(
    settings: Settings, emulator: BotApiEmulator
) -> None:
    async with running(settings, emulator, quota_daily_ops=3) as bot:
        message_id = emulator.user_message(USER, "the ring is in the kitchen jar")
        await emulator.wait_for(chat_id=USER, count=1)
        assert "Saved" in await save(bot, USER, "the invoice is on the office desk")
        assert "Saved" in await save(bot, USER, "the charger is in the red backpack")
        before = len(emulator.sent(USER))
        emulator.user_edit(USER, message_id, "the ring moved to the safe")
        [answer] = (await emulator.wait_for(chat_id=USER, count=before + 1))[before:]
        assert text_of(answer) == f"{DAILY_LIMIT.format(n=3)} {RESETS}"
        assert "the ring is in the kitchen jar" in await texts(bot, USER)
