"""Groups end to end: shared memory, prompts by reply, who may change what (both databases)."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator

import pytest

from botapi_emulator import BotApiEmulator, SentMessage
from engine.settings import Settings
from tests.e2e.conftest import BotUnderTest

OWNER, ALICE, BOB, STRANGER = 8_000, 8_001, 8_002, 8_003
GROUP, FORUM = -1_000_000_800_001, -1_000_000_800_002
SHORT_ID = re.compile(r"<code>([0-9a-f]{8})</code>")


@pytest.fixture
async def bot(settings: Settings, emulator: BotApiEmulator) -> AsyncIterator[BotUnderTest]:
    """The bot in a group (OWNER created it and is its admin) and a forum; ALICE, BOB members."""
    emulator.create_group(GROUP, title="flat share", members=[ALICE, BOB], creator=OWNER)
    emulator.create_group(FORUM, title="club", forum=True, members=[ALICE, BOB], creator=OWNER)
    under_test = BotUnderTest(settings, emulator)
    await under_test.start()
    yield under_test
    await under_test.stop()


def short_id(message: SentMessage) -> str:
    found = SHORT_ID.search(message.text or "")
    assert found, message.text
    return found.group(1)


async def group_memories(bot: BotUnderTest, space: int = GROUP) -> list[str]:
    return [m.text for m in (await bot.engine.reads.page(space_id=space, limit=100)).items]


async def test_save_alone_prompts_with_force_reply_and_the_reply_completes_it(
    bot: BotUnderTest,
) -> None:
    [prompt] = await bot.say(ALICE, "/save", chat_id=GROUP)
    assert prompt.force_reply
    bot.emulator.user_message(
        BOB, "bob answers the prompt", chat_id=GROUP, reply_to=prompt.message_id
    )
    bot.emulator.user_message(ALICE, "unrelated chatter", chat_id=GROUP)
    [saved] = await bot.say(
        ALICE, "the spare key is with the neighbour", chat_id=GROUP, reply_to=prompt.message_id
    )
    assert "Saved" in (saved.text or "")
    assert await group_memories(bot) == ["the spare key is with the neighbour"]
    assert (await bot.engine.reads.page(space_id=ALICE)).total == 0


async def test_members_share_memories_and_only_authors_or_admins_change_them(
    bot: BotUnderTest,
) -> None:
    [saved] = await bot.say(ALICE, "/save bins go out on tuesday", chat_id=GROUP)
    memory = short_id(saved)
    [refused] = await bot.say(BOB, f"/forget {memory}", chat_id=GROUP)
    assert "Forgot" not in (refused.text or "")
    [refused_edit] = await bot.say(BOB, f"/edit {memory} bins go out on friday", chat_id=GROUP)
    assert "Updated" not in (refused_edit.text or "")
    assert await group_memories(bot) == ["bins go out on tuesday"]
    [edited] = await bot.say(ALICE, f"/edit {memory} bins go out on wednesday", chat_id=GROUP)
    assert "Updated" in (edited.text or "")
    [forgotten] = await bot.say(OWNER, f"/forget {memory}", chat_id=GROUP)  # a group admin
    assert "Forgot" in (forgotten.text or "")
    assert await group_memories(bot) == []


async def test_forget_all_and_export_are_for_group_admins(bot: BotUnderTest) -> None:
    await bot.say(ALICE, "/save the router is in the hallway cupboard", chat_id=GROUP)
    await bot.say(OWNER, "/start")  # OWNER has a private chat with the bot
    await bot.say(OWNER, "/save my own private note")
    for command in ("/forget_all", "/export"):
        [refused] = await bot.say(BOB, command, chat_id=GROUP)
        assert not (refused.reply_markup or {}).get("inline_keyboard")
    assert bot.emulator.sent(BOB) == []  # no export reached Bob's private chat
    [said] = await bot.say(OWNER, "/export", chat_id=GROUP)
    exported = await bot.emulator.wait_for(lambda ms: any(m.document for m in ms), chat_id=OWNER)
    [document] = [m for m in exported if m.document]
    body = json.loads(document.document or b"{}")
    assert [m["text"] for m in body["memories"]] == ["the router is in the hallway cupboard"]
    assert not any(m.document for m in bot.emulator.sent(GROUP))
    assert "router" not in (said.text or "")
    [question] = await bot.say(OWNER, "/forget_all", chat_id=GROUP)
    answer = await bot.press(OWNER, question, 0)
    assert answer
    assert await group_memories(bot) == []
    assert [m.text for m in (await bot.engine.reads.page(space_id=OWNER)).items] == [
        "my own private note"
    ]


async def test_export_asks_to_start_the_bot_privately_first(bot: BotUnderTest) -> None:
    await bot.say(ALICE, "/save a group note", chat_id=GROUP)
    bot.emulator.block(OWNER)  # OWNER never started the bot: Telegram refuses a private file
    [said] = await bot.say(OWNER, "/export", chat_id=GROUP)
    assert "private" in (said.text or "").lower()
    assert not any(m.document for m in bot.emulator.sent())


async def test_a_button_pressed_by_someone_else_does_nothing(bot: BotUnderTest) -> None:
    [saved] = await bot.say(ALICE, "/save the plants need water on sunday", chat_id=GROUP)
    answer = await bot.press(BOB, saved, 0)  # Alice's Undo, pressed by Bob
    assert "not yours" in str(answer.get("text", "")).lower()
    assert await group_memories(bot) == ["the plants need water on sunday"]
    answer = await bot.press(ALICE, saved, 0)
    assert await group_memories(bot) == []


async def test_a_short_id_from_another_space_is_not_found(bot: BotUnderTest) -> None:
    [saved] = await bot.say(ALICE, "/save my private diary entry")
    private_id = short_id(saved)
    [reply] = await bot.say(ALICE, f"/forget {private_id}", chat_id=GROUP)
    assert "No memory" in (reply.text or "")
    assert "diary" not in (reply.text or "")
    assert [m.text for m in (await bot.engine.reads.page(space_id=ALICE)).items] == [
        "my private diary entry"
    ]


async def test_a_forum_topic_is_kept_and_shown(bot: BotUnderTest) -> None:
    topic = bot.emulator.create_topic(FORUM, "shopping")
    [saved] = await bot.say(ALICE, "/save buy paint", chat_id=FORUM, thread_id=topic)
    assert saved.thread_id == topic
    [memory] = (await bot.engine.reads.page(space_id=FORUM)).items
    assert memory.topic_id == topic
    [listed] = await bot.say(BOB, "/list", chat_id=FORUM, thread_id=topic)
    assert "buy paint" in (listed.text or "")
    assert str(topic) in (listed.text or "")


async def test_an_anonymous_admin_acts_as_a_group_admin(bot: BotUnderTest) -> None:
    [saved] = await bot.say(ALICE, "/save alice's note", chat_id=GROUP)
    before = len(bot.emulator.sent(GROUP))
    bot.emulator.anonymous_admin_message(GROUP, f"/forget {short_id(saved)}")
    [reply] = (await bot.emulator.wait_for(chat_id=GROUP, count=before + 1))[before:]
    assert "Forgot" in (reply.text or "")
    assert await group_memories(bot) == []


async def test_a_refused_change_costs_no_quota(bot: BotUnderTest) -> None:
    [saved] = await bot.say(ALICE, "/save the bike lock code is 0420", chat_id=GROUP)
    await bot.say(BOB, "/help", chat_id=GROUP)
    async with bot.engine.stores.reading() as repos:
        row = await repos.users.get(BOB)
    before = row.ops_today if row else 0
    await bot.say(BOB, f"/forget {short_id(saved)}", chat_id=GROUP)
    await bot.say(BOB, f"/edit {short_id(saved)} mine now", chat_id=GROUP)
    async with bot.engine.stores.reading() as repos:
        row = await repos.users.get(BOB)
    assert (row.ops_today if row else 0) == before
    assert await group_memories(bot) == ["the bike lock code is 0420"]
