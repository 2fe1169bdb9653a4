"""Issue 9's leaks, end to end: a memory never leaves its chat (SQLite and PostgreSQL).

Each test syncs on a command the bot must answer in the same chat (chats are processed in
order), so "the bot said nothing" is checked after the message was surely processed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from botapi_emulator import BotApiEmulator, SentMessage
from engine.settings import Settings
from tests.e2e.conftest import BotUnderTest

ALICE, BOB, CAROL, ADMIN = 7_001, 7_002, 7_003, 7_009
GROUP_A, GROUP_B = -1_000_000_700_001, -1_000_000_700_002
CHANNEL = -1_000_000_700_900


@pytest.fixture
async def bot(settings: Settings, emulator: BotApiEmulator) -> AsyncIterator[BotUnderTest]:
    """The bot with ADMIN as its admin, and two groups everyone is in."""
    for group in (GROUP_A, GROUP_B):
        emulator.create_group(
            group, title=f"group {group}", members=[ALICE, BOB, CAROL, ADMIN], creator=ADMIN
        )
    under_test = BotUnderTest(settings.model_copy(update={"admin_user_ids": (ADMIN,)}), emulator)
    await under_test.start()
    yield under_test
    await under_test.stop()


def texts(messages: list[SentMessage]) -> str:
    return "\n".join((m.text or "") + (m.caption or "") for m in messages)


async def sync_group(bot: BotUnderTest, group: int, user: int = ALICE) -> list[SentMessage]:
    """Everything the bot sent in `group` so far, once it answered a /help there."""
    await bot.say(user, "/help", chat_id=group)
    return bot.emulator.sent(group)


async def test_a_pending_private_recall_is_not_answered_in_a_group(bot: BotUnderTest) -> None:
    await bot.say(ALICE, "my passport is in the blue drawer")
    await bot.say(ALICE, "/recall")  # the bot now waits for Alice's question in private
    bot.emulator.user_message(ALICE, "passport anyone?", chat_id=GROUP_A)
    in_group = await sync_group(bot, GROUP_A)
    assert len(in_group) == 1  # only the /help answer
    assert "blue drawer" not in texts(bot.emulator.sent(GROUP_A))
    [answer] = await bot.say(ALICE, "passport")  # the private question still completes
    assert "blue drawer" in (answer.text or "")


async def test_a_pending_private_save_is_not_completed_in_a_group(bot: BotUnderTest) -> None:
    await bot.say(ALICE, "/save")
    bot.emulator.user_message(ALICE, "group chatter about lunch", chat_id=GROUP_A)
    assert len(await sync_group(bot, GROUP_A)) == 1
    assert (await bot.engine.reads.page(space_id=ALICE)).total == 0
    assert (await bot.engine.reads.page(space_id=GROUP_A)).total == 0
    await bot.say(ALICE, "buy oat milk")
    page = await bot.engine.reads.page(space_id=ALICE)
    assert [m.text for m in page.items] == ["buy oat milk"]


async def test_an_admins_broadcast_draft_never_shows_in_a_group(bot: BotUnderTest) -> None:
    await bot.say(ADMIN, "/start")
    await bot.say(ADMIN, "/broadcast")  # waits for the text in private
    bot.emulator.user_message(ADMIN, "hello team, lunch at noon", chat_id=GROUP_A)
    in_group = await sync_group(bot, GROUP_A, user=ADMIN)
    assert len(in_group) == 1
    assert "lunch at noon" not in texts(in_group)
    assert await bot.engine.broadcasts.ids() == []


async def test_plain_group_chatter_is_never_saved_or_answered(bot: BotUnderTest) -> None:
    for line in ("the wifi password is hunter2", "ok", "/save@someotherbot not for us"):
        bot.emulator.user_message(BOB, line, chat_id=GROUP_A)
    assert len(await sync_group(bot, GROUP_A)) == 1
    assert (await bot.engine.reads.page(space_id=GROUP_A)).total == 0
    assert (await bot.engine.reads.page(space_id=BOB)).total == 0


async def test_a_group_memory_is_for_that_group_only(bot: BotUnderTest) -> None:
    await bot.say(ALICE, "/save the wifi password is hunter2", chat_id=GROUP_A)
    [found] = await bot.say(BOB, "/recall wifi password", chat_id=GROUP_A)
    assert "hunter2" in (found.text or "")
    [listed] = await bot.say(BOB, "/list", chat_id=GROUP_A)
    assert "hunter2" in (listed.text or "")
    for chat in (BOB, GROUP_B):
        replies = await bot.say(BOB, "/recall wifi password", chat_id=chat)
        replies += await bot.say(BOB, "/list", chat_id=chat)
        assert "hunter2" not in texts(replies)


async def test_anonymous_admins_of_two_groups_never_see_each_others_memories(
    bot: BotUnderTest,
) -> None:
    """Both anonymous admins are the same Telegram sender (GroupAnonymousBot)."""
    emulator = bot.emulator
    before = len(emulator.sent(GROUP_A))
    emulator.anonymous_admin_message(GROUP_A, "/save vault code is 4711")
    await emulator.wait_for(chat_id=GROUP_A, count=before + 1)
    page = await bot.engine.reads.page(space_id=GROUP_A)
    assert [(m.text, m.author_id) for m in page.items] == [("vault code is 4711", GROUP_A)]
    for command in ("/list", "/recall vault code", "/export"):
        before = len(emulator.sent(GROUP_B))
        emulator.anonymous_admin_message(GROUP_B, command)
        replies = (await emulator.wait_for(chat_id=GROUP_B, count=before + 1))[before:]
        assert "4711" not in texts(replies)
    assert "4711" not in texts(emulator.sent(GROUP_B))
    assert all(m.chat_id in (GROUP_A, GROUP_B) for m in emulator.sent() if "4711" in texts([m]))


async def test_channel_posts_and_automatic_forwards_are_ignored(bot: BotUnderTest) -> None:
    bot.emulator.channel_forward(GROUP_A, CHANNEL, "/save channel news: launch on friday")
    bot.emulator.message_as_channel(GROUP_A, CHANNEL, "/list")
    assert len(await sync_group(bot, GROUP_A)) == 1
    assert (await bot.engine.reads.page(space_id=GROUP_A)).total == 0
    assert (await bot.engine.reads.page(space_id=CHANNEL)).total == 0


async def test_group_speakers_are_not_broadcast_recipients(bot: BotUnderTest) -> None:
    await bot.say(CAROL, "/save team lunch on thursday", chat_id=GROUP_A)
    assert await bot.engine.broadcasts.recipients() == 0
    await bot.say(CAROL, "/start")
    assert await bot.engine.broadcasts.recipients() == 1


async def test_a_user_who_blocked_the_bot_is_active_again_when_they_write(
    bot: BotUnderTest,
) -> None:
    await bot.say(ALICE, "/start")
    async with bot.engine.stores.unit_of_work("blocked") as uow:
        await uow.users.deactivate(ALICE)  # as the broadcast worker does on a 403
    assert await bot.engine.broadcasts.recipients() == 0
    await bot.say(ALICE, "back again, remember the gate code 1234")
    assert await bot.engine.broadcasts.recipients() == 1


async def test_edits_of_messages_that_were_never_saved_cost_nothing(bot: BotUnderTest) -> None:
    await bot.say(BOB, "/help", chat_id=GROUP_A)
    chatter = bot.emulator.user_message(BOB, "just chatting", chat_id=GROUP_A)
    for n in range(3):
        bot.emulator.user_edit(BOB, chatter, f"just chatting, take {n}", chat_id=GROUP_A)
    assert len(await sync_group(bot, GROUP_A, user=BOB)) == 2  # the two /help answers
    assert await _ops_today(bot, BOB) == 0  # /help is free, and so are the edits


async def _ops_today(bot: BotUnderTest, user_id: int) -> int:
    async with bot.engine.stores.reading() as repos:
        row = await repos.users.get(user_id)
    return 0 if row is None else row.ops_today
