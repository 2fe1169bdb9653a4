"""Issue 9, points 5 and 6 end to end: who is an admin, and what /forget_all takes with it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest

from botapi_emulator import BotApiEmulator
from engine.settings import Settings
from tests.e2e.conftest import BotUnderTest

CONFIGURED, GRANTED, DROPPED, SAM_OLD, SAM_NEW = 9_501, 9_502, 9_503, 9_504, 9_505
GROUP, OTHER = -1_002_000_000_001, -1_002_000_000_002
REFUSAL = "Sorry, that command is not available."


@contextlib.asynccontextmanager
async def running(
    settings: Settings, emulator: BotApiEmulator, admins: tuple[int, ...]
) -> AsyncIterator[BotUnderTest]:
    under_test = BotUnderTest(settings.model_copy(update={"admin_user_ids": admins}), emulator)
    await under_test.start()
    try:
        yield under_test
    finally:
        await under_test.stop()


async def is_admin(bot: BotUnderTest, user_id: int) -> bool:
    [answer] = await bot.say(user_id, "/audit 1")
    return answer.text != REFUSAL


async def test_settings_decide_admins_at_start_unless_role_granted(
    settings: Settings, emulator: BotApiEmulator
) -> None:
    async with running(settings, emulator, (CONFIGURED, DROPPED)) as bot:
        for user_id in (CONFIGURED, GRANTED, DROPPED):
            await bot.say(user_id, "/start")
        [granted] = await bot.say(CONFIGURED, f"/role {GRANTED} admin")
        assert "now admin" in (granted.text or "")
        assert await is_admin(bot, DROPPED)
    async with running(settings, emulator, (CONFIGURED,)) as bot:
        assert await is_admin(bot, CONFIGURED)
        assert await is_admin(bot, GRANTED)  # a /role decision outlives the settings
        assert not await is_admin(bot, DROPPED)  # removed from ADMIN_USER_IDS: demoted
        entries = await bot.engine.admin.latest_audit(limit=20)
        assert any(
            e.action == "role_change"
            and e.target == str(DROPPED)
            and e.details.get("to") == "user"
            for e in entries
        )


async def test_role_by_a_username_two_users_carry_asks_for_the_id(
    settings: Settings, emulator: BotApiEmulator
) -> None:
    async with running(settings, emulator, (CONFIGURED,)) as bot:
        await bot.say(CONFIGURED, "/start")
        await bot.say(SAM_OLD, "/start", username="sam")
        await bot.say(SAM_NEW, "/start", username="Sam")  # the name changed hands
        [asked] = await bot.say(CONFIGURED, "/role @sam viewer")
        assert "numeric id" in (asked.text or "")
        assert not await is_admin(bot, SAM_OLD)
        for user_id in (SAM_OLD, SAM_NEW):
            assert (await bot.engine.admin.role_of(user_id)).value == "user"
        [done] = await bot.say(CONFIGURED, f"/role {SAM_NEW} viewer")
        assert "now viewer" in (done.text or "")


async def test_forget_all_takes_the_chats_dead_letters_with_it(
    settings: Settings, emulator: BotApiEmulator
) -> None:
    emulator.create_group(GROUP, title="g", members=[GRANTED], creator=CONFIGURED)
    async with running(settings, emulator, ()) as bot:
        await bot.say(GRANTED, "/save the safe code is 5150", chat_id=GROUP)
        ledger = bot.processor.services.ledger if bot.processor else None
        assert ledger is not None
        for chat, update_id in ((GROUP, 10_001), (OTHER, 10_002)):
            raw = {"update_id": update_id, "message": {"text": "/save the safe code is 5150"}}
            await ledger.park(update_id=update_id, chat_id=chat, raw=raw, error="X", attempts=3)
        [question] = await bot.say(CONFIGURED, "/forget_all", chat_id=GROUP)
        assert (await bot.press(CONFIGURED, question, 0))["text"] == "Done"
        letters = await ledger.dead_letters()
        assert [letter.chat_id for letter in letters] == [OTHER]  # replay cannot bring it back
        assert (await bot.engine.reads.page(space_id=GROUP)).total == 0


@pytest.mark.dates
async def test_export_counts_against_the_daily_quota(
    settings: Settings, emulator: BotApiEmulator
) -> None:
    async with running(settings, emulator, ()) as bot:
        await bot.say(GRANTED, "/save one thing to export")
        await bot.engine.quotas.flush()  # counts are written behind: read them once written
        async with bot.engine.stores.reading() as repos:
            row = await repos.users.get(GRANTED)
        before = row.ops_today if row else 0
        await bot.say(GRANTED, "/export")
        await bot.engine.quotas.flush()
        async with bot.engine.stores.reading() as repos:
            row = await repos.users.get(GRANTED)
        assert row is not None
        assert row.ops_today == before + 1
