"""A group upgraded to a supergroup keeps its memory (issue 30, item 8), on both databases.

Telegram gives the supergroup a new chat id and announces it twice (a `migrate_to_chat_id`
message in the old group, a `migrate_from_chat_id` one in the new supergroup, in either order,
maybe more than once); a send to the old id answers 400 with `migrate_to_chat_id`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from bot.ledger import UpdateLedger
from botapi_emulator import BotApiEmulator
from engine.consistency import compare
from engine.reminders import DONE
from engine.schedule import Schedule
from engine.settings import Settings
from tests.e2e.conftest import BotUnderTest

OWNER, ALICE, BOB = 47_001, 47_002, 47_003
BASIC, SUPER = -470_001, -1_000_000_470_001
OTHER_BASIC, OTHER_SUPER = -470_002, -1_000_000_470_002


@pytest.fixture
async def bot(settings: Settings, emulator: BotApiEmulator) -> AsyncIterator[BotUnderTest]:
    """OWNER created two basic groups; ALICE and BOB are members."""
    for group in (BASIC, OTHER_BASIC):
        emulator.create_group(
            group, title=f"g{group}", kind="group", members=[ALICE, BOB], creator=OWNER
        )
    under_test = BotUnderTest(settings, emulator)
    await under_test.start()
    yield under_test
    await under_test.stop()


async def texts(bot: BotUnderTest, space: int) -> list[str]:
    return sorted(m.text for m in (await bot.engine.reads.page(space_id=space, limit=100)).items)


async def moved(bot: BotUnderTest, old: int, count: int) -> None:
    for _ in range(400):
        if len(await texts(bot, old)) == 0 and await bot.engine.spaces.moved_to(old) is not None:
            break
        await asyncio.sleep(0.05)
    await bot.settled()


@pytest.mark.parametrize("notices", [("to", "from"), ("from", "to", "from", "to")])
async def test_the_supergroup_recalls_lists_and_reminds_what_the_group_saved(
    bot: BotUnderTest, notices: tuple[str, ...]
) -> None:
    await bot.say(ALICE, "/save the wifi password is hunter2 #office", chat_id=BASIC)
    await bot.say(BOB, "/save the plumber comes on friday", chat_id=BASIC)
    await bot.say(ALICE, "/remind in 3 hours water the office plants", chat_id=BASIC)
    await bot.say(ALICE, "/save the other group's note", chat_id=OTHER_BASIC)
    before = await texts(bot, BASIC)
    assert len(before) == 3
    # The supergroup may already hold a memory saved before the notices were processed.
    bot.emulator.upgrade_group(BASIC, SUPER, notices=notices)
    await moved(bot, BASIC, 3)
    assert await texts(bot, SUPER) == before
    assert await texts(bot, BASIC) == []
    assert await texts(bot, OTHER_BASIC) == ["the other group's note"], "another group moved"
    [recalled] = await bot.say(ALICE, "/recall wifi password", chat_id=SUPER)
    assert "hunter2" in (recalled.text or "")
    [listed] = await bot.say(BOB, "/list", chat_id=SUPER)
    assert "plumber" in (listed.text or "")
    assert "hunter2" in (listed.text or "")
    [tags] = await bot.say(BOB, "/tags", chat_id=SUPER)
    assert "#office" in (tags.text or "")
    [upcoming] = await bot.say(ALICE, "/reminders", chat_id=SUPER)
    assert "water the office plants" in (upcoming.text or "")
    for space in (SUPER, BASIC, OTHER_BASIC):
        report = await compare(bot.engine.stores, space_id=space)
        assert not report.drift, report
    assert not [v for v in await bot.engine.stores.vectors.scan(BASIC) if v.space_id == BASIC]
    assert await UpdateLedger(bot.engine.stores).dead_letters(pending_only=False) == []


async def test_a_reminder_sent_to_the_old_id_follows_the_upgrade(bot: BotUnderTest) -> None:
    """The notices were lost (the bot was down too long): the send that meets the upgrade goes
    to the supergroup, once, and the space follows."""
    await bot.say(ALICE, "/save the spare key is with bob", chat_id=BASIC)
    due = datetime.now(UTC) + timedelta(seconds=1)
    reminder = await bot.engine.reminders.create(
        space_id=BASIC, user_id=ALICE, schedule=Schedule(due, "bins out"), timezone="UTC"
    )
    bot.emulator.upgrade_group(BASIC, SUPER, notices=())
    await bot.emulator.wait_for(
        lambda _: any((m.text or "").startswith("⏰ bins out") for m in bot.emulator.sent(SUPER)),
        timeout=20,
    )
    await moved(bot, BASIC, 2)
    assert len([m for m in bot.emulator.sent(SUPER) if "bins out" in (m.text or "")]) == 1
    found = await bot.engine.reminders.get(space_id=SUPER, reminder_id=reminder.id)
    assert found is not None
    assert found.status == DONE
    assert await texts(bot, SUPER) == ["bins out", "the spare key is with bob"]
