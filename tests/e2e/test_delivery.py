"""Delivery under faults: Bot API errors, retries, redelivery, dead letters, slow chats."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from bot.ledger import UpdateLedger
from botapi_emulator import BotApiEmulator, SentMessage
from engine.inbox import Inbox
from tests.e2e.conftest import BotUnderTest

A, B = 101, 202
SHORT_ID = re.compile(r"<code>([0-9a-f]{8})</code>")
APOLOGY = "Sorry, something went wrong"


def short_id(message: SentMessage) -> str:
    match = SHORT_ID.search(message.text or "")
    assert match is not None, message.text
    return match.group(1)


def reference(apology: SentMessage) -> str:
    match = re.search(r"Reference: <code>([0-9a-f]{6})</code>", apology.text or "")
    assert match is not None, apology.text
    return match.group(1)


async def texts(bot: BotUnderTest, user_id: int) -> list[str]:
    page = await bot.engine.reads.page(space_id=user_id, limit=1000)
    return [m.text for m in page.items]


def sends_to(emulator: BotApiEmulator, chat_id: int) -> int:
    """sendMessage requests for `chat_id` that reached the emulator (failed ones included)."""
    return sum(
        method.lower() == "sendmessage" and str(params.get("chat_id")) == str(chat_id)
        for _, method, params in emulator.calls
    )


async def eventually(condition: Callable[[], bool], *, within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition never became true"
        await asyncio.sleep(0.05)


async def all_confirmed(bot: BotUnderTest) -> None:
    """Wait until every queued update was confirmed and processed."""
    await bot.settled()


async def inbox_done(bot: BotUnderTest, update_ids: list[int]) -> bool:
    """True when the inbox holds every one of `update_ids` as done."""
    statuses = await Inbox(bot.engine.stores).statuses(update_ids)
    return statuses == dict.fromkeys(update_ids, "done")


async def eventually_async(
    condition: Callable[[], Awaitable[bool]], *, within: float = 15.0
) -> None:
    deadline = time.monotonic() + within
    while not await condition():
        assert time.monotonic() < deadline, "condition never became true"
        await asyncio.sleep(0.05)


def text_update(user_id: int, message_id: int, text: str) -> dict[str, Any]:
    """A raw private text-message update (for updates we need the update_id of)."""
    user = {"id": user_id, "is_bot": False, "first_name": "Test"}
    chat = {"id": user_id, "type": "private", "first_name": "Test"}
    message = {"message_id": message_id, "from": user, "chat": chat, "date": int(time.time())}
    return {"message": message | {"text": text}}


# ---- Bot API errors on sendMessage -------------------------------------------------------------
async def test_429_reply_still_arrives(bot: BotUnderTest) -> None:
    bot.emulator.fail("sendMessage", status=429, retry_after=1)
    started = time.monotonic()
    [saved] = await bot.say(A, "rate limited but remembered")
    assert "Saved" in (saved.text or "")
    assert time.monotonic() - started >= 1.0
    assert sends_to(bot.emulator, A) == 2
    assert await texts(bot, A) == ["rate limited but remembered"]


async def test_403_is_logged_and_not_retried(
    bot: BotUnderTest, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="memorybot.intake")
    bot.emulator.fail("sendMessage", status=403)
    bot.emulator.user_message(A, "saved though the reply was refused")
    await all_confirmed(bot)
    assert bot.emulator.sent(A) == []
    assert sends_to(bot.emulator, A) == 1
    assert any("not answered" in r.getMessage() for r in caplog.records)
    assert await texts(bot, A) == ["saved though the reply was refused"]
    [answer] = await bot.say(A, "/list")
    assert "saved though the reply was refused" in (answer.plain or "")
    assert await UpdateLedger(bot.engine.stores).dead_letters() == []


async def test_blocked_user_does_not_stop_others(
    bot: BotUnderTest, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="memorybot.intake")
    bot.emulator.block(A)
    bot.emulator.user_message(A, "/start")
    bot.emulator.user_message(A, "note while blocked")
    [welcome] = await bot.say(B, "/start")
    assert "remember" in (welcome.text or "")
    await all_confirmed(bot)
    assert bot.emulator.sent(A) == []
    assert sum("not answered" in r.getMessage() for r in caplog.records) == 2
    assert await texts(bot, A) == ["note while blocked"]
    bot.emulator.unblock(A)
    [listed] = await bot.say(A, "/list")
    assert "note while blocked" in (listed.plain or "")
    assert await UpdateLedger(bot.engine.stores).dead_letters() == []


async def test_500_on_first_reply_is_retried_and_saved_once(bot: BotUnderTest) -> None:
    bot.emulator.fail("sendMessage", status=500)
    [reply] = await bot.say(A, "saved exactly once")
    [memory] = (await bot.engine.reads.page(space_id=A)).items
    assert memory.text == "saved exactly once"
    assert short_id(reply) == memory.short_id
    assert sends_to(bot.emulator, A) == 2
    await all_confirmed(bot)
    assert len(bot.emulator.sent(A)) == 1
    assert (await bot.engine.index.check(space_id=A)).vector_count == 1


async def test_retried_save_confirms_with_undo(bot: BotUnderTest) -> None:
    bot.emulator.fail("sendMessage", status=500)
    [reply] = await bot.say(A, "saved exactly once")
    assert "✅ Saved" in (reply.text or "")
    assert reply.reply_markup is not None


# ---- intake: offsets, redelivery, dead letters -------------------------------------------------
async def test_confirmed_offset_passes_processed_updates(bot: BotUnderTest) -> None:
    ids = [bot.emulator.raw_update(text_update(A, 10_000 + i, f"note {i}")) for i in range(3)]
    await bot.emulator.wait_for(chat_id=A, count=3)
    await eventually(lambda: bot.emulator.confirmed_offset > max(ids))
    assert bot.emulator.pending_updates() == 0
    statuses = await Inbox(bot.engine.stores).statuses(ids)
    await eventually_async(lambda: inbox_done(bot, ids))
    assert set(statuses) == set(ids)  # stored before the offset passed them
    assert len(await texts(bot, A)) == 3


async def test_redelivered_update_is_not_processed_again(bot: BotUnderTest) -> None:
    update = text_update(A, 10_000, "delivered twice by the server")
    update_id = bot.emulator.raw_update(update)
    await bot.emulator.wait_for(chat_id=A, count=1)
    await eventually(lambda: bot.emulator.confirmed_offset > update_id)
    await bot.restart()  # a fresh intake polls without an offset: the server may redeliver
    assert bot.emulator.raw_update(dict(update, update_id=update_id)) == update_id
    [listed] = await bot.say(A, "/list")
    assert (listed.plain or "").startswith("🧠 Your memories 1–1 of 1")
    assert len(bot.emulator.sent(A)) == 2
    assert await texts(bot, A) == ["delivered twice by the server"]


async def test_hopeless_update_is_parked_and_intake_moves_on(bot: BotUnderTest) -> None:
    assert bot.processor is not None
    attempts = bot.processor.attempts
    bot.emulator.fail("sendMessage", status=500, times=attempts)  # every attempt, not the apology
    message_id = bot.emulator.user_message(A, "/help")
    [apology] = await bot.emulator.wait_for(chat_id=A, count=1)
    assert APOLOGY in (apology.text or "")
    ref = reference(apology)
    assert sends_to(bot.emulator, A) == attempts + 1
    ledger = UpdateLedger(bot.engine.stores)
    [letter] = await ledger.dead_letters()
    assert letter.chat_id == A
    assert letter.attempts == attempts
    assert letter.raw["message"]["message_id"] == message_id
    assert letter.raw["update_id"] == letter.update_id
    assert f"[{ref}]" in letter.error
    assert "NetworkError" in letter.error
    assert await Inbox(bot.engine.stores).statuses([letter.update_id]) == {
        letter.update_id: "parked"
    }
    await eventually(lambda: bot.emulator.confirmed_offset > letter.update_id)
    [welcome] = await bot.say(A, "/start")
    assert "remember" in (welcome.text or "")
    assert len(await ledger.dead_letters()) == 1


async def test_update_failing_even_the_apology_is_parked(bot: BotUnderTest) -> None:
    assert bot.processor is not None
    bot.emulator.fail("sendMessage", status=500, times=bot.processor.attempts + 1)
    bot.emulator.user_message(A, "/help")
    await all_confirmed(bot)
    assert bot.emulator.sent(A) == []
    assert len(await UpdateLedger(bot.engine.stores).dead_letters()) == 1
    [answer] = await bot.say(A, "/help")
    assert "What I can do" in (answer.text or "")


# ---- getUpdates errors and slow chats ----------------------------------------------------------
async def test_get_updates_error_is_survived(
    bot: BotUnderTest, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="memorybot.intake")
    bot.emulator.fail("getUpdates", status=502)
    [first] = await bot.say(A, "/start")
    [second] = await bot.say(A, "/help")
    assert "remember" in (first.text or "")
    assert "What I can do" in (second.text or "")
    assert any("getUpdates failed" in r.getMessage() for r in caplog.records)


async def test_slow_chat_does_not_hold_up_another(bot: BotUnderTest) -> None:
    bot.emulator.slow("sendMessage", delay=2.0)
    bot.emulator.user_message(A, "/help")  # queued together: one batch, two chat lanes
    bot.emulator.user_message(B, "/help")
    await bot.emulator.wait_for(lambda msgs: len(msgs) >= 1)
    first = time.monotonic()
    await bot.emulator.wait_for(lambda msgs: len(msgs) >= 2)
    assert time.monotonic() - first >= 1.0  # in turn, both would arrive together after 2 s
    assert len(bot.emulator.sent(A)) == len(bot.emulator.sent(B)) == 1
