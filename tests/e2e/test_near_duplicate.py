"""Near-duplicate notice end to end on both databases: [Keep both] and [Replace it]."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest

from botapi_emulator import BotApiEmulator, SentMessage
from engine.clock import utcnow
from engine.settings import Settings
from tests.e2e.conftest import BotUnderTest

A, B = 401, 402
OWNER, ALICE, BOB = 8_201, 8_202, 8_203
GROUP = -1_000_000_820_001
IDS = re.compile(r"<code>([0-9a-f]{8})</code>")


@pytest.fixture
async def bot(settings: Settings, emulator: BotApiEmulator) -> AsyncIterator[BotUnderTest]:
    """The bot, with a group OWNER administers and ALICE and BOB belong to."""
    emulator.create_group(GROUP, title="flat", members=[ALICE, BOB], creator=OWNER)
    under_test = BotUnderTest(settings, emulator)
    await under_test.start()
    yield under_test
    await under_test.stop()


def ids(message: SentMessage) -> list[str]:
    return IDS.findall(message.text or "")


def buttons(message: SentMessage) -> list[str]:
    rows = (message.reply_markup or {}).get("inline_keyboard", [])
    return [str(b["text"]) for row in rows for b in row]


async def texts(bot: BotUnderTest, space: int) -> list[str]:
    return sorted(m.text for m in (await bot.engine.reads.page(space_id=space)).items)


@pytest.mark.dates
async def test_a_near_duplicate_is_noticed_and_replace_forgets_the_older_one(
    bot: BotUnderTest,
) -> None:
    [first] = await bot.say(A, "my passport is in the blue drawer")
    [second] = await bot.say(A, "My passport is in the blue drawer!")
    old, new = ids(first)[0], ids(second)[0]
    assert ids(second) == [new, old]
    assert f"very similar to <code>{old}</code> from {utcnow():%Y-%m-%d}" in (second.text or "")
    assert buttons(second) == ["Keep both", "Replace it", "↩️ Undo"]
    answer = await bot.press(A, second, 1)
    assert answer["text"] == f"🗑 Forgot {old}"
    assert "Replaced" in (second.text or "")
    assert buttons(second) == ["↩️ Undo"]
    assert await texts(bot, A) == ["My passport is in the blue drawer!"]
    assert not (await bot.engine.index.check(space_id=A)).drift


async def test_keep_both_keeps_both_and_drops_the_choice(bot: BotUnderTest) -> None:
    await bot.say(A, "the wifi password is hunter2")
    [second] = await bot.say(A, "The wifi password is hunter2.")
    assert "very similar to" in (second.text or "")
    answer = await bot.press(A, second, 0)
    assert answer["text"] == "Kept both."
    assert buttons(second) == ["↩️ Undo"]
    assert len(await texts(bot, A)) == 2


async def test_unrelated_saves_and_other_spaces_get_no_notice(bot: BotUnderTest) -> None:
    await bot.say(A, "buy oat milk on the way home")
    [other] = await bot.say(A, "the dentist appointment is on friday at nine")
    assert "similar" not in (other.text or "")
    assert buttons(other) == ["↩️ Undo"]
    [elsewhere] = await bot.say(B, "buy oat milk on the way home")
    assert "similar" not in (elsewhere.text or "")
    [ttl] = await bot.say(A, "/save 2h buy oat milk on the way home!")
    assert "it will be deleted on" in (ttl.text or "")
    assert "It is very similar to" in (ttl.text or "")


async def test_in_a_group_only_the_author_or_an_admin_may_replace(bot: BotUnderTest) -> None:
    await bot.say(ALICE, "/save the bins go out on tuesday", chat_id=GROUP)
    [bobs] = await bot.say(BOB, "/save The bins go out on Tuesday", chat_id=GROUP)
    assert "very similar to" in (bobs.text or "")
    refused = await bot.press(BOB, bobs, 1)
    assert refused["text"] == "Only the author or a group admin can change this memory."
    assert len(await texts(bot, GROUP)) == 2
    assert (await bot.press(OWNER, bobs, 1))["text"] == "Not yours."  # Bob's buttons
    assert len(await texts(bot, GROUP)) == 2
