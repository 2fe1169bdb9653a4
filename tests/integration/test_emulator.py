"""The Bot API emulator, driven by the real python-telegram-bot over HTTP."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Message, MessageEntity
from telegram.constants import ParseMode
from telegram.error import BadRequest, EndPointNotFound, Forbidden, InvalidToken, RetryAfter

from botapi_emulator import BotApiEmulator, SentMessage

USER = 4242


@pytest.fixture
async def emu() -> AsyncIterator[BotApiEmulator]:
    emulator = BotApiEmulator()
    await emulator.start()
    yield emulator
    await emulator.stop()


@pytest.fixture
async def bot(emu: BotApiEmulator) -> AsyncIterator[Bot]:
    async with Bot(emu.token, base_url=emu.base_url, base_file_url=emu.base_file_url) as client:
        yield client


def _keyboard(*data: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[InlineKeyboardButton(d, callback_data=d) for d in data]])


async def test_get_me(bot: Bot) -> None:
    me = await bot.get_me()
    assert me.is_bot
    assert me.username == "memorybot_test_bot"
    assert me.id == 123456
    assert me.can_join_groups


async def test_user_message_arrives_with_command_entity(emu: BotApiEmulator, bot: Bot) -> None:
    first = emu.user_message(USER, "/save milk", username="alice")
    second = emu.user_message(USER, "/save@memorybot_test_bot eggs")
    updates = await bot.get_updates()
    assert [u.message.message_id for u in updates if u.message] == [first, second]
    msg = updates[0].message
    assert msg is not None
    assert msg.text == "/save milk"
    assert msg.chat.type == "private"
    assert msg.chat.id == USER
    assert msg.from_user is not None
    assert msg.from_user.username == "alice"
    assert msg.entities[0].type == MessageEntity.BOT_COMMAND
    assert (msg.entities[0].offset, msg.entities[0].length) == (0, 5)
    assert updates[1].message is not None
    assert updates[1].message.entities[0].length == len("/save@memorybot_test_bot")
    plain = emu.user_message(USER, "just text")
    assert plain == second + 1
    (last,) = await bot.get_updates(offset=updates[-1].update_id + 1)
    assert last.message is not None
    assert not last.message.entities


async def test_updates_redelivered_until_confirmed(emu: BotApiEmulator, bot: Bot) -> None:
    emu.user_message(USER, "one")
    emu.user_message(USER, "two")
    first = await bot.get_updates()
    again = await bot.get_updates()
    assert [u.update_id for u in first] == [u.update_id for u in again]
    assert emu.pending_updates() == 2
    rest = await bot.get_updates(offset=first[0].update_id + 1)
    assert [u.update_id for u in rest] == [first[1].update_id]
    assert emu.pending_updates() == 1
    assert await bot.get_updates(offset=first[1].update_id + 1) == ()
    assert emu.pending_updates() == 0
    assert emu.confirmed_offset == first[1].update_id + 1


async def test_long_poll_returns_early(emu: BotApiEmulator, bot: Bot) -> None:
    started = time.monotonic()
    assert await bot.get_updates(timeout=0.3) == ()  # type: ignore[arg-type]
    assert time.monotonic() - started >= 0.25
    poll = asyncio.create_task(bot.get_updates(timeout=2))
    await asyncio.sleep(0.2)
    started = time.monotonic()
    emu.user_message(USER, "wake up")
    updates = await poll
    assert time.monotonic() - started < 1.0
    assert updates[0].message is not None
    assert updates[0].message.text == "wake up"


async def test_send_message_html(emu: BotApiEmulator, bot: Bot) -> None:
    msg = await bot.send_message(USER, "<b>hi</b> &lt;x&gt; &amp; 👍 <i>y</i>", ParseMode.HTML)
    assert msg.text == "hi <x> & 👍 y"
    assert [(e.type, e.offset, e.length) for e in msg.entities] == [
        (MessageEntity.BOLD, 0, 2),
        (MessageEntity.ITALIC, 12, 1),  # the emoji counts two UTF-16 units
    ]
    link = await bot.send_message(USER, '<a href="https://x.y">l</a>', parse_mode="HTML")
    assert link.entities[0].url == "https://x.y"
    for bad in ("<foo>x</foo>", "<b>open", "a < b", "<b><i>x</b></i>", "<br/>"):
        with pytest.raises(BadRequest, match=r"(?i)can't parse entities"):
            await bot.send_message(USER, bad, parse_mode=ParseMode.HTML)
    with pytest.raises(BadRequest, match=r"(?i)message is too long"):
        await bot.send_message(USER, "x" * 4097)
    await bot.send_message(USER, "<b>" + "x" * 4096 + "</b>", parse_mode=ParseMode.HTML)
    with pytest.raises(BadRequest, match=r"(?i)message text is empty"):
        await bot.send_message(USER, "<b> </b>", parse_mode=ParseMode.HTML)
    with pytest.raises(BadRequest, match=r"(?i)reserved"):
        await bot.send_message(USER, "1.5", parse_mode=ParseMode.MARKDOWN_V2)
    sent = emu.sent(USER)
    assert [m.message_id for m in sent] == [1, 2, 3]
    assert sent[0].text == "<b>hi</b> &lt;x&gt; &amp; 👍 <i>y</i>"
    assert sent[0].plain == "hi <x> & 👍 y"
    assert sent[0].parse_mode == "HTML"


async def test_faults(emu: BotApiEmulator, bot: Bot) -> None:
    emu.fail("sendMessage", status=429, retry_after=3)
    with pytest.raises(RetryAfter) as caught:
        await bot.send_message(USER, "hi")
    assert caught.value.retry_after in (3, dt.timedelta(seconds=3))
    emu.fail("sendMessage", status=403, times=2)
    for _ in range(2):
        with pytest.raises(Forbidden, match=r"(?i)blocked"):
            await bot.send_message(USER, "hi")
    emu.fail("sendMessage", status=400, description="Bad Request: custom")
    with pytest.raises(BadRequest, match=r"(?i)custom"):
        await bot.send_message(USER, "hi")
    await bot.send_message(USER, "through")
    emu.block(USER)
    with pytest.raises(Forbidden):
        await bot.send_chat_action(USER, "typing")
    await bot.send_message(USER + 1, "other chat is fine")
    emu.unblock(USER)
    await bot.send_message(USER, "again")
    emu.slow("sendMessage", delay=0.3)
    started = time.monotonic()
    await bot.send_message(USER, "slow")
    assert time.monotonic() - started >= 0.3
    assert [m.text for m in emu.sent(USER)] == ["through", "again", "slow"]
    assert [c[1] for c in emu.calls].count("sendMessage") == 8


async def test_edit_message_text(emu: BotApiEmulator, bot: Bot) -> None:
    msg = await bot.send_message(USER, "draft", reply_markup=_keyboard("a"))
    edited = await bot.edit_message_text("<b>final</b>", USER, msg.message_id, parse_mode="HTML")
    assert isinstance(edited, type(msg))
    assert edited.text == "final"
    (sent,) = emu.sent(USER)
    assert (sent.text, sent.edits, sent.reply_markup) == ("<b>final</b>", 1, None)
    with pytest.raises(BadRequest, match=r"(?i)not modified"):
        await bot.edit_message_text("<b>final</b>", USER, msg.message_id, parse_mode="HTML")
    await bot.edit_message_reply_markup(USER, msg.message_id, reply_markup=_keyboard("b"))
    assert emu.sent(USER)[0].reply_markup == _keyboard("b").to_dict()
    with pytest.raises(BadRequest, match=r"(?i)not found"):
        await bot.edit_message_text("x", USER, 999)
    assert await bot.delete_message(USER, msg.message_id)
    assert emu.sent(USER)[0].deleted


async def test_press_button(emu: BotApiEmulator, bot: Bot) -> None:
    emu.user_message(USER, "/list")
    msg = await bot.send_message(USER, "pick", reply_markup=_keyboard("del:1", "del:2"))
    assert msg.message_id == 2  # ids are shared by user and bot messages in a chat
    with pytest.raises(ValueError, match=r"(?i)no button"):
        emu.press_button(USER, msg.message_id, "del:3")
    query_id = emu.press_button(USER, msg.message_id, "del:2")
    updates = await bot.get_updates()
    query = updates[-1].callback_query
    assert query is not None
    assert (query.id, query.data) == (query_id, "del:2")
    assert isinstance(query.message, Message)
    assert query.message.message_id == msg.message_id
    assert query.message.reply_markup == _keyboard("del:1", "del:2")
    assert await bot.answer_callback_query(query_id, text="deleted")
    assert emu.callback_answers == [
        {"callback_query_id": query_id, "text": "deleted", "show_alert": False}
    ]
    with pytest.raises(BadRequest, match=r"(?i)query is too old"):
        await bot.answer_callback_query(query_id)


async def test_user_edit(emu: BotApiEmulator, bot: Bot) -> None:
    message_id = emu.user_message(USER, "typo")
    emu.user_edit(USER, message_id, "/save fixed")
    updates = await bot.get_updates()
    edited = updates[-1].edited_message
    assert edited is not None
    assert (edited.message_id, edited.text, edited.entities[0].type) == (
        message_id,
        "/save fixed",
        MessageEntity.BOT_COMMAND,
    )
    assert edited.edit_date is not None


async def test_documents(emu: BotApiEmulator, bot: Bot) -> None:
    msg = await bot.send_document(
        USER, b"a,b\n1,2\n", filename="export.csv", caption="<i>your export</i>", parse_mode="HTML"
    )
    assert msg.document is not None
    assert msg.document.file_name == "export.csv"
    assert msg.caption == "your export"
    (sent,) = emu.sent(USER)
    assert (sent.document, sent.file_name, sent.text) == (b"a,b\n1,2\n", "export.csv", None)
    emu.user_document(USER, "notes.txt", "/import", content=b"remember this")
    emu.user_photo(USER, "a photo")
    emu.user_sticker(USER)
    updates = await bot.get_updates()
    doc_msg, photo_msg, sticker_msg = (u.message for u in updates)
    assert doc_msg is not None
    assert doc_msg.document is not None
    assert doc_msg.caption_entities[0].type == MessageEntity.BOT_COMMAND
    file = await bot.get_file(doc_msg.document.file_id)
    assert bytes(await file.download_as_bytearray()) == b"remember this"
    assert photo_msg is not None
    assert len(photo_msg.photo) == 3
    assert sticker_msg is not None
    assert sticker_msg.sticker is not None


async def test_sends_per_second_and_wait_for(emu: BotApiEmulator, bot: Bot) -> None:
    async def later() -> None:
        await asyncio.sleep(0.1)
        for i in range(3):
            await bot.send_message(USER, f"m{i}")

    task = asyncio.create_task(later())
    msgs = await emu.wait_for(chat_id=USER, count=3, timeout=5)
    await task
    assert [m.text for m in msgs] == ["m0", "m1", "m2"]
    assert sum(emu.sends_per_second().values()) == 3
    found = await emu.wait_for(lambda ms: any(m.text == "m1" for m in ms), timeout=1)
    assert len(found) == 3
    with pytest.raises(TimeoutError, match=r"(?i)m2"):
        await emu.wait_for(chat_id=USER, count=4, timeout=0.2)


async def test_misc_methods(emu: BotApiEmulator, bot: Bot) -> None:
    assert await bot.set_my_commands([("save", "Save a memory"), ("find", "Search")])
    assert [c.command for c in await bot.get_my_commands()] == ["save", "find"]
    assert emu.commands[0] == {"command": "save", "description": "Save a memory"}
    with pytest.raises(BadRequest, match=r"(?i)BOT_COMMAND_INVALID"):
        await bot.set_my_commands([("Save-It", "nope")])
    emu.user_message(USER, "stale")
    assert await bot.delete_webhook(drop_pending_updates=True)
    assert emu.pending_updates() == 0
    assert (await bot.get_webhook_info()).url == ""
    with pytest.raises(EndPointNotFound):
        await bot.do_api_request("noSuchMethod")
    with pytest.raises(BadRequest, match=r"(?i)BUTTON_DATA_INVALID"):
        await bot.send_message(USER, "x", reply_markup=_keyboard("x" * 65))
    with pytest.raises(InvalidToken):
        async with Bot("999:WRONG", base_url=emu.base_url):
            pass


async def test_control_api(emu: BotApiEmulator, bot: Bot) -> None:
    root = emu.base_url.removesuffix("/bot")
    async with aiohttp.ClientSession(root) as http:
        async with http.post("/control/message", json={"user_id": USER, "text": "/help"}) as r:
            message_id = (await r.json())["message_id"]
        (update,) = await bot.get_updates()
        assert update.message is not None
        assert update.message.message_id == message_id
        reply = await bot.send_message(USER, "help text", reply_markup=_keyboard("ok"))
        press = {"user_id": USER, "message_id": reply.message_id, "callback_data": "ok"}
        async with http.post("/control/press", json=press) as r:
            assert (await r.json())["callback_query_id"]
        async with http.post("/control/press", json=press | {"message_id": 99}) as r:
            assert r.status == 400
        edit = {"user_id": USER, "message_id": message_id, "text": "/help me"}
        async with http.post("/control/edit", json=edit) as r:
            assert r.status == 200
        fault = {"method": "sendMessage", "status": 429, "times": 1, "retry_after": 2}
        async with http.post("/control/fault", json=fault) as r:
            assert r.status == 200
        with pytest.raises(RetryAfter):
            await bot.send_message(USER, "limited")
        await bot.send_document(USER, b"12345", filename="a.txt")
        async with http.get("/control/sent", params={"chat_id": str(USER)}) as r:
            sent = await r.json()
        assert [(m["text"], m["file_name"], m["document_size"]) for m in sent] == [
            ("help text", None, None),
            (None, "a.txt", 5),
        ]
        assert sent[1]["document"] is None
        await bot.get_updates(offset=update.update_id + 1)
        async with http.get("/control/state") as r:
            state = await r.json()
    assert state["confirmed_offset"] == update.update_id + 1
    assert state["pending_updates"] == 2  # the press and the edit
    assert state["calls"] == len(emu.calls)
    assert isinstance(emu.sent()[0], SentMessage)
