"""`memorybot dlq replay` hands dead letters back to the inbox: a running bot processes them;
with no bot running, the command processes them itself (no jobs, no broadcast worker)."""

from __future__ import annotations

import asyncio

from pydantic import SecretStr

from bot.ledger import DeadLetter, UpdateLedger
from bot.operations import replay
from botapi_emulator import BotApiEmulator
from engine.inbox import Inbox
from tests.e2e.conftest import BotUnderTest

A = 303


async def park_a_save(bot: BotUnderTest, text: str) -> DeadLetter:
    """Make every reply to one message fail until it is parked; returns its dead letter."""
    assert bot.processor is not None
    bot.emulator.fail("sendMessage", status=500, times=bot.processor.attempts)
    bot.emulator.user_message(A, text)
    await bot.emulator.wait_for(chat_id=A, count=1)  # the apology
    await bot.settled()
    [letter] = await UpdateLedger(bot.engine.stores).dead_letters()
    return letter


def saved_replies(emulator: BotApiEmulator) -> int:
    return sum("Saved" in (m.text or "") for m in emulator.sent(A))


async def test_replay_is_processed_by_the_running_bot(bot: BotUnderTest) -> None:
    letter = await park_a_save(bot, "the parcel code is 4471")
    ledger = UpdateLedger(bot.engine.stores)
    assert await replay(bot.settings, ledger, [letter]) == 0
    await bot.emulator.wait_for(chat_id=A, count=2)
    await bot.settled()
    assert saved_replies(bot.emulator) == 1
    page = await bot.engine.reads.page(space_id=A)
    assert [m.text for m in page.items] == ["the parcel code is 4471"]  # saved once, not twice
    assert await ledger.dead_letters() == []  # replayed
    assert await Inbox(bot.engine.stores).statuses([letter.update_id]) == {
        letter.update_id: "done"
    }


async def test_replay_without_a_running_bot_processes_them_itself(bot: BotUnderTest) -> None:
    letter = await park_a_save(bot, "the boiler was serviced in May")
    await bot.stop()
    settings = bot.settings.model_copy(
        update={
            "telegram_bot_token": SecretStr(bot.emulator.token),
            "telegram_api_base_url": bot.emulator.base_url,
        }
    )
    ledger = UpdateLedger(bot.engine.stores)
    before = len(bot.emulator.calls)
    assert await asyncio.wait_for(replay(settings, ledger, [letter]), 120) == 0
    assert saved_replies(bot.emulator) == 1
    methods = {method for _, method, _ in bot.emulator.calls[before:]}
    assert "getUpdates" not in methods  # it processed the inbox, it did not poll
    await bot.start()  # the fixture stops it again
    assert [m.text for m in (await bot.engine.reads.page(space_id=A)).items] == [
        "the boiler was serviced in May"
    ]
