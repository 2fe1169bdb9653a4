"""Groups in the Bot API emulator, driven by the real python-telegram-bot over HTTP."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import aiohttp
import pytest
from telegram import (
    Bot,
    Chat,
    ChatMemberAdministrator,
    ChatMemberBanned,
    ChatMemberLeft,
    ChatMemberMember,
    ChatMemberOwner,
    ForceReply,
    Message,
    MessageEntity,
    MessageOriginChannel,
    ReplyParameters,
    Update,
)
from telegram.error import BadRequest, ChatMigrated, Forbidden, RetryAfter

from botapi_emulator import CHANNEL_BOT, GROUP_ANONYMOUS_BOT, ApiError, BotApiEmulator
from botapi_emulator.limits import SendLimits

OWNER, ADMIN, ALICE, BOB, STRANGER = 5001, 5002, 5003, 5004, 5999
SUPERGROUP = -1_001_234_567_890
FORUM = -1_001_234_567_891
BASIC = -4_242_001
CHANNEL = -1_009_876_543_210
BOT_NAME = "memorybot_test_bot"


@pytest.fixture
async def emu() -> AsyncIterator[BotApiEmulator]:
    emulator = BotApiEmulator(bot_username=BOT_NAME)
    await emulator.start()
    emulator.create_group(
        SUPERGROUP, title="Family", admins=[ADMIN], members=[ALICE, BOB], creator=OWNER
    )
    emulator.create_group(FORUM, title="Club", forum=True, members=[ALICE], creator=OWNER)
    emulator.create_group(BASIC, title="Old group", kind="group", members=[ALICE, BOB])
    yield emulator
    await emulator.stop()


@pytest.fixture
async def bot(emu: BotApiEmulator) -> AsyncIterator[Bot]:
    async with Bot(emu.token, base_url=emu.base_url, base_file_url=emu.base_file_url) as client:
        yield client


async def _last(bot: Bot) -> Update:
    updates = await bot.get_updates()
    await bot.get_updates(offset=updates[-1].update_id + 1)
    return updates[-1]


def _message(update: Update) -> Message:
    assert update.message is not None
    return update.message


async def test_member_messages_and_addressed_commands(emu: BotApiEmulator, bot: Bot) -> None:
    emu.user_message(ALICE, "/save@memorybot_test_bot milk", chat_id=SUPERGROUP, username="alice")
    update = await _last(bot)
    msg = _message(update)
    assert update.effective_chat is not None
    assert (update.effective_chat.type, update.effective_chat.title) == ("supergroup", "Family")
    assert update.effective_user is not None
    assert update.effective_user.id == ALICE
    assert update.effective_sender == update.effective_user
    assert msg.sender_chat is None
    assert msg.message_thread_id is None
    assert not msg.is_automatic_forward
    entity = msg.entities[0]
    assert entity.type == MessageEntity.BOT_COMMAND
    assert (entity.offset, entity.length) == (0, len("/save@memorybot_test_bot"))
    assert msg.parse_entities([MessageEntity.BOT_COMMAND]).popitem()[1] == "/save@" + BOT_NAME

    emu.user_message(BOB, "/list", chat_id=BASIC)
    basic = _message(await _last(bot))
    assert (basic.chat.type, basic.chat.title) == (Chat.GROUP, "Old group")
    assert not basic.chat.is_forum

    with pytest.raises(ValueError, match="add_member"):
        emu.user_message(STRANGER, "hi all", chat_id=SUPERGROUP)
    emu.add_member(SUPERGROUP, STRANGER)
    emu.user_message(STRANGER, "hi all", chat_id=SUPERGROUP)
    emu.remove_member(SUPERGROUP, STRANGER, ban=True)
    with pytest.raises(ValueError, match="kicked"):
        emu.user_message(STRANGER, "back", chat_id=SUPERGROUP)
    with pytest.raises(ValueError, match="supergroup id"):
        emu.create_group(-5, title="wrong id")
    with pytest.raises(ValueError, match="basic group id"):
        emu.create_group(SUPERGROUP - 7, title="wrong id", kind="group")


async def test_replies_and_force_reply(emu: BotApiEmulator, bot: Bot) -> None:
    command = emu.user_message(ALICE, "/save", chat_id=SUPERGROUP)
    prompt = await bot.send_message(
        SUPERGROUP,
        "What should I save?",
        reply_markup=ForceReply(selective=True, input_field_placeholder="a memory"),
        reply_parameters=ReplyParameters(command),
    )
    assert prompt.reply_markup is None  # Telegram echoes inline keyboards only
    assert prompt.reply_to_message is not None
    assert prompt.reply_to_message.message_id == command
    (sent,) = emu.sent(SUPERGROUP)
    assert sent.force_reply
    assert sent.reply_markup is not None
    assert sent.reply_markup["selective"] is True
    assert sent.reply_to == command

    answer = emu.user_message(
        ALICE, "the key is under the mat", chat_id=SUPERGROUP, reply_to=prompt.message_id
    )
    msg = _message((await bot.get_updates())[-1])
    assert msg.message_id == answer
    replied = msg.reply_to_message
    assert replied is not None
    assert replied.message_id == prompt.message_id
    assert replied.from_user is not None
    assert replied.from_user.id == emu.bot_user["id"]
    assert replied.text == "What should I save?"
    assert replied.reply_to_message is None  # Telegram nests one level only
    assert msg.message_thread_id == command  # a reply chain in a supergroup is a thread
    assert not msg.is_topic_message

    emu.user_message(BOB, "me too", chat_id=BASIC)
    first = (await bot.get_updates())[-1]
    emu.user_message(ALICE, "same", chat_id=BASIC, reply_to=_message(first).message_id)
    in_basic = _message((await bot.get_updates())[-1])
    assert in_basic.reply_to_message is not None
    assert in_basic.reply_to_message.from_user is not None
    assert in_basic.reply_to_message.from_user.id == BOB
    assert in_basic.message_thread_id is None  # basic groups have no threads
    with pytest.raises(KeyError):
        emu.user_message(ALICE, "?", chat_id=SUPERGROUP, reply_to=999)
    with pytest.raises(BadRequest, match=r"(?i)message thread not found"):
        await bot.send_message(SUPERGROUP, "x", message_thread_id=command)


async def test_anonymous_admin(emu: BotApiEmulator, bot: Bot) -> None:
    emu.anonymous_admin_message(SUPERGROUP, "/forget_all", author_signature="Boss")
    update = await _last(bot)
    msg = _message(update)
    assert msg.from_user is not None
    assert msg.from_user.to_dict() == GROUP_ANONYMOUS_BOT
    assert msg.sender_chat is not None
    assert (msg.sender_chat.id, msg.sender_chat.type) == (SUPERGROUP, "supergroup")
    assert update.effective_sender == msg.sender_chat
    assert msg.author_signature == "Boss"
    assert msg.entities[0].type == MessageEntity.BOT_COMMAND
    with pytest.raises(ValueError, match="only supergroups"):
        emu.anonymous_admin_message(BASIC, "hi")


async def test_channel_forwards_and_posts(emu: BotApiEmulator, bot: Bot) -> None:
    emu.channel_forward(SUPERGROUP, CHANNEL, "new episode is out")
    update = await _last(bot)
    assert update.channel_post is None  # the bot is not in the channel
    msg = _message(update)
    assert msg.is_automatic_forward
    assert msg.from_user is not None
    assert msg.from_user.to_dict() == CHANNEL_BOT
    assert msg.sender_chat is not None
    assert (msg.sender_chat.id, msg.sender_chat.type) == (CHANNEL, Chat.CHANNEL)
    assert msg.chat.id == SUPERGROUP
    origin = msg.forward_origin
    assert isinstance(origin, MessageOriginChannel)
    assert origin.chat.id == CHANNEL
    assert origin.message_id == 1
    assert (await bot.get_chat(SUPERGROUP)).linked_chat_id == CHANNEL

    other = CHANNEL - 1
    emu.create_channel(other, title="News")
    post_id = emu.channel_post(other, "breaking", author_signature="Ed")
    post = await _last(bot)
    assert post.message is None
    assert post.channel_post is not None
    assert post.channel_post.message_id == post_id
    assert post.channel_post.from_user is None
    assert post.effective_chat is not None
    assert post.effective_chat.type == Chat.CHANNEL
    assert post.effective_sender == post.channel_post.sender_chat
    assert post.channel_post.author_signature == "Ed"

    emu.message_as_channel(SUPERGROUP, CHANNEL - 2, "posted as my channel")
    as_channel = _message(await _last(bot))
    assert as_channel.from_user is not None
    assert as_channel.from_user.id == CHANNEL_BOT["id"]
    assert as_channel.sender_chat is not None
    assert as_channel.sender_chat.id == CHANNEL - 2
    assert not as_channel.is_automatic_forward


async def test_forum_topics(emu: BotApiEmulator, bot: Bot) -> None:
    topic = emu.create_topic(FORUM, "Recipes")
    created = _message(await _last(bot))
    assert created.forum_topic_created is not None
    assert created.forum_topic_created.name == "Recipes"
    assert (created.message_id, created.message_thread_id) == (topic, topic)
    assert created.chat.is_forum

    emu.user_message(ALICE, "/recall pasta", chat_id=FORUM, thread_id=topic)
    msg = _message(await _last(bot))
    assert (msg.message_thread_id, msg.is_topic_message) == (topic, True)
    assert msg.reply_to_message is not None  # Telegram shows the topic's creation message
    assert msg.reply_to_message.message_id == topic

    sent = await bot.send_message(FORUM, "nothing yet", message_thread_id=topic)
    assert (sent.message_thread_id, sent.is_topic_message) == (topic, True)
    assert emu.sent(FORUM)[-1].thread_id == topic
    reply = await bot.send_message(
        FORUM, "in the topic", reply_parameters=ReplyParameters(msg.message_id)
    )
    assert reply.message_thread_id == topic
    assert emu.sent(FORUM)[-1].thread_id == topic

    emu.user_message(ALICE, "in General", chat_id=FORUM)
    general = _message(await _last(bot))
    assert general.message_thread_id is None
    assert not general.is_topic_message
    assert general.reply_to_message is None
    with pytest.raises(BadRequest, match=r"(?i)message thread not found"):
        await bot.send_message(FORUM, "x", message_thread_id=topic + 100)
    with pytest.raises(ValueError, match="no topics"):
        emu.user_message(ALICE, "x", chat_id=SUPERGROUP, thread_id=topic)
    await bot.send_message(ALICE, "threads are ignored here", message_thread_id=7)
    assert emu.sent(ALICE)[-1].thread_id is None


async def test_get_chat_member(emu: BotApiEmulator, bot: Bot) -> None:
    emu.promote(SUPERGROUP, OWNER, anonymous=True, custom_title="Founder")
    emu.remove_member(SUPERGROUP, BOB, ban=True)
    owner = await bot.get_chat_member(SUPERGROUP, OWNER)
    assert isinstance(owner, ChatMemberOwner)
    assert owner.is_anonymous
    assert owner.custom_title == "Founder"
    admin = await bot.get_chat_member(SUPERGROUP, ADMIN)
    assert isinstance(admin, ChatMemberAdministrator)
    assert not admin.is_anonymous
    assert admin.can_delete_messages
    assert admin.user.id == ADMIN
    assert isinstance(await bot.get_chat_member(SUPERGROUP, ALICE), ChatMemberMember)
    assert isinstance(await bot.get_chat_member(SUPERGROUP, BOB), ChatMemberBanned)
    emu.user_message(STRANGER, "hello bot")
    assert isinstance(await bot.get_chat_member(SUPERGROUP, STRANGER), ChatMemberLeft)
    anonymous = await bot.get_chat_member(SUPERGROUP, GROUP_ANONYMOUS_BOT["id"])
    assert isinstance(anonymous, ChatMemberAdministrator)
    assert anonymous.is_anonymous
    assert anonymous.user.username == "GroupAnonymousBot"
    me = int(emu.bot_user["id"])
    assert isinstance(await bot.get_chat_member(SUPERGROUP, me), ChatMemberMember)
    emu.set_bot_admin(SUPERGROUP)
    assert isinstance(await bot.get_chat_member(SUPERGROUP, me), ChatMemberAdministrator)
    with pytest.raises(BadRequest, match=r"(?i)user not found"):
        await bot.get_chat_member(SUPERGROUP, 777_000_111)
    assert isinstance(await bot.get_chat_member(STRANGER, STRANGER), ChatMemberMember)
    assert await bot.get_chat_member_count(SUPERGROUP) == 4  # owner, admin, alice, the bot


async def test_get_chat_administrators(emu: BotApiEmulator, bot: Bot) -> None:
    emu.promote(SUPERGROUP, ALICE, anonymous=True, custom_title="Keeper")
    admins = await bot.get_chat_administrators(SUPERGROUP)
    assert [(type(a), a.user.id) for a in admins] == [
        (ChatMemberOwner, OWNER),
        (ChatMemberAdministrator, ADMIN),
        (ChatMemberAdministrator, ALICE),
    ]
    keeper = admins[2]
    assert isinstance(keeper, ChatMemberAdministrator)
    assert (keeper.is_anonymous, keeper.custom_title) == (True, "Keeper")
    emu.set_bot_admin(SUPERGROUP)
    emu.demote(SUPERGROUP, ALICE)
    ids = [a.user.id for a in await bot.get_chat_administrators(SUPERGROUP)]
    assert ids == [OWNER, ADMIN, emu.bot_user["id"]]  # other bots are never listed
    assert await bot.get_chat_administrators(BASIC) == ()  # no admins appointed, no creator
    emu.user_message(ALICE, "hi")
    with pytest.raises(BadRequest, match=r"(?i)there are no administrators in the private chat"):
        await bot.get_chat_administrators(ALICE)
    with pytest.raises(BadRequest, match=r"(?i)chat not found"):
        await bot.get_chat_administrators(-1_000_000_000_999)


async def test_group_send_limit(emu: BotApiEmulator, bot: Bot) -> None:
    emu.user_message(ALICE, "hi")
    for i in range(20):
        await bot.send_message(SUPERGROUP, f"answer {i}")
    with pytest.raises(RetryAfter) as caught:
        await bot.send_message(SUPERGROUP, "one too many")
    retry = caught.value.retry_after
    assert 59 <= (retry.total_seconds() if isinstance(retry, dt.timedelta) else retry) <= 60
    with pytest.raises(RetryAfter):
        await bot.send_document(SUPERGROUP, b"x", filename="x.txt")
    await bot.send_message(FORUM, "another group is fine")
    for i in range(25):
        await bot.send_message(ALICE, f"private {i}")  # no per-minute limit in private chats
    assert len(emu.sent(SUPERGROUP)) == 20
    emu.group_send_limit = None
    await bot.send_message(SUPERGROUP, "limit off")
    emu.user_message(ALICE, "implicit", chat_id=-777)  # never registered: not limited
    for i in range(21):
        await bot.send_message(-777, f"legacy {i}")


def test_send_limit_window_frees_slots() -> None:
    now = [1000.0]
    limits = SendLimits(clock=lambda: now[0])
    for _ in range(20):
        limits.take(SUPERGROUP)
        now[0] += 1.0
    with pytest.raises(ApiError, match="retry after 40") as caught:
        limits.take(SUPERGROUP)  # the first of the 20 frees its slot at 1060, now is 1020
    assert (caught.value.status, caught.value.retry_after) == (429, 40)
    now[0] = 1060.0
    limits.take(SUPERGROUP)
    limits.take(FORUM)


async def test_bot_membership_and_get_chat(emu: BotApiEmulator, bot: Bot) -> None:
    chat = await bot.get_chat(FORUM)
    assert (chat.type, chat.title, chat.is_forum) == ("supergroup", "Club", True)
    assert chat.permissions is not None
    message = emu.user_message(ALICE, "delete me", chat_id=SUPERGROUP)
    with pytest.raises(BadRequest, match=r"(?i)can't be deleted"):
        await bot.delete_message(SUPERGROUP, message)
    emu.set_bot_admin(SUPERGROUP)
    assert await bot.delete_message(SUPERGROUP, message)
    emu.set_bot_status(SUPERGROUP, "kicked")
    with pytest.raises(Forbidden, match=r"(?i)bot was kicked from the supergroup chat"):
        await bot.send_message(SUPERGROUP, "anyone?")
    emu.set_bot_status(BASIC, "left")
    with pytest.raises(Forbidden, match=r"(?i)bot is not a member of the group chat"):
        await bot.get_chat_member(BASIC, ALICE)
    with pytest.raises(BadRequest, match=r"(?i)chat not found"):
        await bot.get_chat(-1_000_000_000_999)


async def test_control_api_groups(emu: BotApiEmulator, bot: Bot) -> None:
    root = emu.base_url.removesuffix("/bot")
    group = -1_005_555_555_555
    async with aiohttp.ClientSession(root) as http:
        body = {"chat_id": group, "title": "Remote", "members": [ALICE], "creator": OWNER}
        async with http.post("/control/group", json=body) as r:
            assert r.status == 200
        async with http.post("/control/anonymous", json={"chat_id": group, "text": "/list"}) as r:
            anonymous_id = (await r.json())["message_id"]
        reply = {"user_id": ALICE, "chat_id": group, "text": "ok", "reply_to": anonymous_id}
        async with http.post("/control/message", json=reply) as r:
            assert r.status == 200
        async with http.post("/control/message", json=reply | {"user_id": STRANGER}) as r:
            assert r.status == 400
    first, second = (u.message for u in await bot.get_updates())
    assert first is not None
    assert first.sender_chat is not None
    assert first.sender_chat.id == group
    assert second is not None
    assert second.reply_to_message is not None
    assert second.reply_to_message.message_id == anonymous_id


async def test_an_upgraded_group_announces_itself_and_sends_there_answer_chat_migrated(
    emu: BotApiEmulator, bot: Bot
) -> None:
    new_id = -1_000_004_242_001
    emu.upgrade_group(BASIC, new_id, by=ALICE, notices=("from", "to"))
    came_from, went_to = (_message(u) for u in await bot.get_updates())
    assert (came_from.chat.id, came_from.chat.type) == (new_id, Chat.SUPERGROUP)
    assert came_from.migrate_from_chat_id == BASIC
    assert (went_to.chat.id, went_to.chat.type, went_to.migrate_to_chat_id) == (
        BASIC,
        Chat.GROUP,
        new_id,
    )
    assert went_to.from_user is not None
    assert went_to.from_user.id == ALICE
    with pytest.raises(ChatMigrated) as caught:
        await bot.send_message(BASIC, "hello?")
    assert caught.value.new_chat_id == new_id
    sent = await bot.send_message(new_id, "hello!")
    assert sent.chat.title == "Old group"
    member = await bot.get_chat_member(new_id, BOB)
    assert isinstance(member, ChatMemberMember)
    with pytest.raises(ValueError, match="may not write"):
        emu.user_message(BOB, "still here?", chat_id=BASIC)
