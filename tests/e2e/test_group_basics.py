"""Quick group checks of the bot side of issue 9: prompts, permissions, buttons, export, gate."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator

import pytest

from bot import exporting
from botapi_emulator import BotApiEmulator, SentMessage
from engine.clock import utcnow
from engine.faults import Step
from engine.settings import Settings
from tests.e2e.conftest import BotUnderTest

OWNER, ALICE, BOB = 9_100, 9_101, 9_102
GROUP, OTHER_GROUP, FORUM = -1_001_000_000_001, -1_001_000_000_002, -1_001_000_000_003
CHANNEL = -1_001_000_000_900
SHORT_ID = re.compile(r"<code>([0-9a-f]{8})</code>")
NOT_AUTHOR = "⚠️ Only the author or a group admin can change this memory."
PRIVATE_ONLY = "Please use this in a private chat with me."


@pytest.fixture
async def bot(settings: Settings, emulator: BotApiEmulator) -> AsyncIterator[BotUnderTest]:
    """OWNER created GROUP, OTHER_GROUP and FORUM (their admin); ALICE and BOB are members."""
    for group in (GROUP, OTHER_GROUP):
        emulator.create_group(group, title=f"g{group}", members=[ALICE, BOB], creator=OWNER)
    emulator.create_group(FORUM, title="forum", forum=True, members=[ALICE, BOB], creator=OWNER)
    under_test = BotUnderTest(settings.model_copy(update={"admin_user_ids": (OWNER,)}), emulator)
    await under_test.start()
    yield under_test
    await under_test.stop()


def short_id(message: SentMessage) -> str:
    found = SHORT_ID.search(message.text or "")
    assert found, message.text
    return found.group(1)


async def texts(bot: BotUnderTest, space: int) -> list[str]:
    return [m.text for m in (await bot.engine.reads.page(space_id=space, limit=100)).items]


async def anonymous(bot: BotUnderTest, group: int, text: str) -> list[SentMessage]:
    """An anonymous admin of `group` says `text`; the bot's one reply there."""
    before = len(bot.emulator.sent(group))
    bot.emulator.anonymous_admin_message(group, text)
    return (await bot.emulator.wait_for(chat_id=group, count=before + 1))[before:]


async def test_save_alone_prompts_and_only_the_reply_to_the_prompt_completes_it(
    bot: BotUnderTest,
) -> None:
    [prompt] = await bot.say(ALICE, "/save 2h", chat_id=GROUP)
    assert prompt.force_reply
    assert prompt.reply_to is not None
    assert prompt.text is not None
    assert prompt.text.startswith("What should I remember")
    bot.emulator.user_message(ALICE, "just chatting", chat_id=GROUP)
    bot.emulator.user_message(BOB, "bob replies", chat_id=GROUP, reply_to=prompt.message_id)
    [saved] = await bot.say(
        ALICE, "the key is under the mat", chat_id=GROUP, reply_to=prompt.message_id
    )
    assert "Saved" in (saved.text or "")
    assert "2 hours" in (saved.text or "")
    assert await texts(bot, GROUP) == ["the key is under the mat"]
    [memory] = (await bot.engine.reads.page(space_id=GROUP)).items
    assert memory.author_id == ALICE
    assert (await bot.engine.broadcasts.recipients()) == 0, "group speakers are no recipients"


async def test_authors_and_admins_change_members_do_not(bot: BotUnderTest) -> None:
    [saved] = await bot.say(ALICE, "/save bins go out on tuesday", chat_id=GROUP)
    ref = short_id(saved)
    for command in (f"/forget {ref}", f"/edit {ref} bins on friday"):
        [refused] = await bot.say(BOB, command, chat_id=GROUP)
        assert refused.text == NOT_AUTHOR
    answer = await bot.press(BOB, saved, 0)
    assert answer["text"] == "Not yours."
    [found] = await bot.say(BOB, "/recall bins", chat_id=GROUP)
    assert "tuesday" in (found.text or "")
    answer = await bot.press(BOB, found, 0)  # Bob's own 🗑 on Alice's memory
    assert answer["text"] == NOT_AUTHOR.removeprefix("⚠️ ")
    assert await texts(bot, GROUP) == ["bins go out on tuesday"]
    [edited] = await bot.say(ALICE, f"/edit {ref} bins on wednesday", chat_id=GROUP)
    assert "Updated" in (edited.text or "")
    [forgot] = await bot.say(OWNER, f"/forget {ref}", chat_id=GROUP)
    assert "Forgot" in (forgot.text or "")


async def test_admin_only_commands_and_export_to_private(bot: BotUnderTest) -> None:
    await bot.say(ALICE, "/save the router is in the hall", chat_id=GROUP)
    for command in ("/forget_all", "/export"):
        [refused] = await bot.say(BOB, command, chat_id=GROUP)
        assert refused.text == f"⚠️ Only a group admin can use {command} in this group."
    bot.emulator.block(OWNER)
    [said] = await bot.say(OWNER, "/export", chat_id=GROUP)
    assert said.text == "Start me in a private chat first, then /export again."
    bot.emulator.unblock(OWNER)
    [said] = await bot.say(OWNER, "/export", chat_id=GROUP)
    assert said.text == "📬 I sent this group's 1 memory to you in a private chat."
    [document] = [m for m in bot.emulator.sent(OWNER) if m.document]
    body = json.loads(document.document or b"")
    assert body["space_id"] == GROUP
    assert "user_id" not in body
    assert [m["text"] for m in body["memories"]] == ["the router is in the hall"]
    for command in ("/stats", "/audit", "/dlq", "/broadcast hi", "/role 1 viewer"):
        [pointed] = await bot.say(OWNER, command, chat_id=GROUP)
        assert pointed.text == PRIVATE_ONLY


async def test_forget_all_in_a_group_purges_its_traces(bot: BotUnderTest) -> None:
    await bot.say(ALICE, "/save the alarm code is 2468", chat_id=GROUP)
    await bot.say(ALICE, "/recall alarm", chat_id=GROUP)
    await bot.say(BOB, "/save", chat_id=GROUP)  # a pending prompt in the group
    await bot.say(ALICE, "/save my own note")  # private: stays
    [question] = await bot.say(OWNER, "/forget_all", chat_id=GROUP)
    assert "of this group" in (question.text or "")
    assert (await bot.press(ALICE, question, 0))["text"] == "Not yours."
    assert (await bot.press(OWNER, question, 0))["text"] == "Done"
    assert await texts(bot, GROUP) == []
    assert await texts(bot, ALICE) == ["my own note"]
    async with bot.engine.stores.reading() as repos:
        assert await repos.kv.get(f"recall:{GROUP}:{ALICE}") is None
        assert await repos.conversations.get(GROUP, BOB) is None


async def test_anonymous_admins_stay_in_their_group(bot: BotUnderTest) -> None:
    [saved] = await anonymous(bot, GROUP, "/save vault code is 4711")
    assert "Saved" in (saved.text or "")
    for command in ("/list", "/recall vault code", f"/forget {short_id(saved)}"):
        replies = await anonymous(bot, OTHER_GROUP, command)
        assert "4711" not in "".join(m.text or "" for m in replies)
    [refused] = await anonymous(bot, OTHER_GROUP, "/export")
    assert "anonymous admin" in (refused.text or "")
    answer = await bot.press(OWNER, saved, 0)  # the group's own Undo: any admin may press it
    assert answer["text"].startswith("🗑 Forgot")
    assert await texts(bot, GROUP) == []


async def test_channels_and_forwards_are_ignored(bot: BotUnderTest) -> None:
    bot.emulator.channel_forward(GROUP, CHANNEL, "/save channel news")
    bot.emulator.message_as_channel(GROUP, CHANNEL, "/list")
    bot.emulator.channel_post(CHANNEL - 1, "/save posted in a channel the bot administers")
    replies = await bot.say(ALICE, "/help", chat_id=GROUP)
    assert len(bot.emulator.sent(GROUP)) == len(replies) == 1
    assert "In groups" in (replies[0].text or "")
    assert await texts(bot, GROUP) == []
    assert await texts(bot, CHANNEL) == []
    assert await texts(bot, CHANNEL - 1) == []


async def test_a_forum_topic_is_kept_shown_and_answered_in(bot: BotUnderTest) -> None:
    topic = bot.emulator.create_topic(FORUM, "shopping")
    [saved] = await bot.say(ALICE, "/save buy paint", chat_id=FORUM, thread_id=topic)
    assert saved.thread_id == topic
    [listed] = await bot.say(BOB, "/list", chat_id=FORUM, thread_id=topic)
    assert f"topic {topic}" in (listed.text or "")
    assert listed.thread_id == topic


async def test_edits_of_chatter_are_free_and_silent(bot: BotUnderTest) -> None:
    chatter = bot.emulator.user_message(BOB, "hello all", chat_id=GROUP)
    bot.emulator.user_edit(BOB, chatter, "hello everyone", chat_id=GROUP)
    [helped] = await bot.say(BOB, "/help", chat_id=GROUP)
    assert bot.emulator.sent(GROUP) == [helped]
    async with bot.engine.stores.reading() as repos:
        assert await repos.users.get(BOB) is None


async def test_export_is_split_below_the_limit(
    bot: BotUnderTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    await bot.say(ALICE, "/start")
    await bot.engine.writes.save_many(space_id=ALICE, texts=[f"note {i} " * 20 for i in range(30)])
    monkeypatch.setattr(exporting, "PART_LIMIT_BYTES", 2_000)
    before = len(bot.emulator.sent(ALICE))
    bot.emulator.user_message(ALICE, "/export")
    bot.emulator.user_message(ALICE, "/help")  # answered after the export (one chat, in order)
    sent = await bot.emulator.wait_for(
        lambda ms: any("What I can do" in (m.text or "") for m in ms[before:]), chat_id=ALICE
    )
    parts = [m for m in sent[before:] if m.document]
    assert len(parts) > 1
    assert parts[0].file_name == f"memorybot-export-{utcnow():%Y%m%d}-part1.json"
    assert all(len(m.document or b"") <= 2_000 for m in parts)
    bodies = [json.loads(m.document or b"") for m in parts]
    assert sum(b["count"] for b in bodies) == 30
    assert len({m["id"] for b in bodies for m in b["memories"]}) == 30
    assert parts[0].caption == f"{bodies[0]['count']} memories · part 1 of {len(parts)}"


async def test_a_failing_group_commit_logs_no_text(
    bot: BotUnderTest, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    bot.engine.stores.faults.fail(Step.FLUSH, times=50)  # only memory writes flush explicitly
    bot.emulator.user_message(ALICE, "/save alice secret plum", chat_id=GROUP)
    bot.emulator.user_message(BOB, "/save bob secret pear", chat_id=OTHER_GROUP)
    await bot.emulator.wait_for(chat_id=GROUP, timeout=30)
    await bot.emulator.wait_for(chat_id=OTHER_GROUP, timeout=30)
    bot.engine.stores.faults.fail(Step.FLUSH, times=0)
    logged = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert "parked" in logged
    assert "plum" not in logged
    assert "pear" not in logged
    letters = await bot.processor.services.ledger.dead_letters() if bot.processor else []
    assert letters
    assert not any("plum" in lt.error or "pear" in lt.error for lt in letters)
