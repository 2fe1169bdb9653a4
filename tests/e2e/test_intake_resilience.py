"""The inbox under pressure, end to end (both databases): no head-of-line blocking between
chats, transient SQL errors survived, the per-update deadline, supervision, bounded SIGTERM.

Before the inbox, a getUpdates batch was processed whole before the next one was fetched: one
slow chat (a group held to 20 messages a minute) kept every other chat waiting. Now each chat
is a lane of its own, claimed from the SQL inbox, and these tests pin that down.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError
from telegram import Update

from bot.ledger import UpdateLedger
from bot.processing import UpdateProcessor
from botapi_emulator import BotApiEmulator, SentMessage
from engine.inbox import Received
from engine.settings import Settings
from tests.e2e.conftest import BotUnderTest, inbox_pending

A, B, OWNER, MEMBER = 8_201, 8_202, 8_203, 8_204
GROUP = -1_000_000_820_001
HELP, WELCOME = "What I can do", "remember"
MakeBot = Callable[..., Awaitable[BotUnderTest]]


@pytest.fixture
async def make_bot(settings: Settings, emulator: BotApiEmulator) -> AsyncIterator[MakeBot]:
    """Start a bot with some settings changed (a short shutdown grace, no delay notices);
    whatever is still running at the end is stopped."""
    started: list[BotUnderTest] = []

    async def make(**overrides: Any) -> BotUnderTest:
        changed = {"shutdown_grace_s": 1.0, "delay_notice_s": 3600.0, **overrides}
        bot = BotUnderTest(settings.model_copy(update=changed), emulator)
        await bot.start()
        started.append(bot)
        return bot

    yield make
    for bot in started:
        if bot.intake is not None and not bot.intake.stopping.is_set():
            await bot.stop()


def sql_blip() -> OperationalError:
    return OperationalError("SELECT 1", {}, ConnectionResetError("server closed the connection"))


class FailFirst:
    """Wraps an async method: the first `times` calls raise `error()`, later ones go through."""

    def __init__(
        self,
        method: Callable[..., Awaitable[Any]],
        times: int,
        error: Callable[[], BaseException] = sql_blip,
    ) -> None:
        self.method = method
        self.times = times
        self.error = error
        self.calls = 0

    @property
    def failed(self) -> int:
        return min(self.calls, self.times)

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls <= self.times:
            raise self.error()
        return await self.method(*args, **kwargs)


class Hang:
    """Wraps `UpdateProcessor.run_once`: the next `times` updates of `chat_id` hang (until
    cancelled) before they are processed, as a handler stuck on a slow call would."""

    def __init__(self, processor: UpdateProcessor, chat_id: int, *, times: int = 1) -> None:
        self.run_once = processor.run_once
        self.chat_id = chat_id
        self.left = times
        self.hung = asyncio.Event()
        self.cancelled = 0

    async def __call__(self, update: Update) -> BaseException | None:
        chat = update.effective_chat
        if chat is not None and chat.id == self.chat_id and self.left > 0:
            self.left -= 1
            self.hung.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.cancelled += 1
                raise
        return await self.run_once(update)


def kinds(messages: list[SentMessage]) -> list[str]:
    """Which reply each message is: the help text, the welcome, or something else."""
    return [
        "help" if HELP in (m.text or "") else "welcome" if WELCOME in (m.text or "") else "other"
        for m in messages
    ]


async def no_dead_letters(bot: BotUnderTest) -> bool:
    return await UpdateLedger(bot.engine.stores).dead_letters(pending_only=False) == []


# ---- head-of-line blocking ----------------------------------------------------------------------
async def test_a_group_held_by_its_send_limit_does_not_hold_up_a_private_chat(
    make_bot: MakeBot, emulator: BotApiEmulator
) -> None:
    flood = 32
    emulator.create_group(GROUP, title="busy", members=[MEMBER], creator=OWNER)
    # The bot's rate limiter keeps each group to 20 messages a minute: the 21st reply waits.
    # The emulator's own 429 is off: how the limiter answers a 429 is not the point here.
    emulator.group_send_limit = None
    bot = await make_bot()
    assert bot.runtime is not None
    for _ in range(flood):
        emulator.user_message(MEMBER, "/help", chat_id=GROUP)
    await emulator.wait_for(chat_id=GROUP, count=20)  # the group's burst is being answered
    [answer] = await bot.say(A, "/help")
    outstanding = flood - len(emulator.sent(GROUP))
    assert HELP in (answer.text or "")
    assert outstanding > 0, "the private chat was answered only after the whole group"
    # The group's rest is kept in the inbox, to be answered as its limit allows.
    assert (await bot.runtime.inbox.depth())[0] >= outstanding
    assert bot.runtime.worker.busy >= 1


# ---- transient SQL errors -----------------------------------------------------------------------
async def test_inbox_store_and_claim_failing_for_a_moment_lose_nothing(
    make_bot: MakeBot, emulator: BotApiEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    bot = await make_bot(breaker_probe_s=0.1)
    assert bot.runtime is not None
    inbox = bot.runtime.inbox
    # The intake stores (and claims) through store_and_claim with updates, the worker's own
    # rounds claim through it with none: the first two of each kind fail.
    store, claim = FailFirst(inbox.store_and_claim, 2), FailFirst(inbox.store_and_claim, 2)

    async def store_and_claim(updates: Sequence[Received], *args: Any, **kwargs: Any) -> Any:
        return await (store if updates else claim)(updates, *args, **kwargs)

    monkeypatch.setattr(inbox, "store_and_claim", store_and_claim)
    for user in (A, B):
        emulator.user_message(user, "/start")
        emulator.user_message(user, "/help")
    for user in (A, B):
        await emulator.wait_for(chat_id=user, count=2)
    await bot.settled()
    assert store.failed == claim.failed == 2  # both were hit, and both recovered
    for user in (A, B):
        assert kinds(emulator.sent(user)) == ["welcome", "help"]  # once each, in order
    assert await no_dead_letters(bot)
    assert bot.runtime.breakers.open == []
    [again] = await bot.say(A, "/help")  # and the bot goes on
    assert HELP in (again.text or "")


@pytest.mark.parametrize("failing", ["park", "retry_later"])
async def test_a_failure_while_putting_an_update_back_does_not_strand_its_chat(
    make_bot: MakeBot, emulator: BotApiEmulator, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    """The update was leased to the lane; when writing its retry (or its dead letter) fails,
    it must go back to the inbox, not stay leased (and renewed) by a lane that is gone."""
    bot = await make_bot()
    assert bot.runtime is not None
    assert bot.processor is not None
    if failing == "park":  # every attempt fails, then parking it fails once
        emulator.fail("sendMessage", status=500, times=bot.processor.attempts)
        ledger = bot.processor.services.ledger
        broken = FailFirst(ledger.park, 1)
        monkeypatch.setattr(ledger, "park", broken)
    else:  # the first attempt fails, then recording the retry fails once
        emulator.fail("sendMessage", status=500, times=1)
        broken = FailFirst(bot.runtime.inbox.retry_later, 1)
        monkeypatch.setattr(bot.runtime.inbox, "retry_later", broken)
    emulator.user_message(A, "/help")
    emulator.user_message(A, "/start")
    await emulator.wait_for(chat_id=A, count=2, timeout=15)
    await bot.settled()
    assert broken.failed == 1
    assert kinds(emulator.sent(A)) == ["help", "welcome"]  # answered, once, in order
    assert await no_dead_letters(bot)


# ---- the deadline -------------------------------------------------------------------------------
async def test_an_update_past_its_deadline_is_retried_and_its_chat_waits_behind_it(
    make_bot: MakeBot, emulator: BotApiEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    bot = await make_bot(update_deadline_s=1.5)
    assert bot.processor is not None
    hang = Hang(bot.processor, A)
    monkeypatch.setattr(bot.processor, "run_once", hang)
    emulator.user_message(A, "/help")
    emulator.user_message(A, "/start")
    await asyncio.wait_for(hang.hung.wait(), timeout=10)
    [other] = await bot.say(B, "/help")  # another chat goes on meanwhile
    assert HELP in (other.text or "")
    assert emulator.sent(A) == []
    await emulator.wait_for(chat_id=A, count=2, timeout=15)
    await bot.settled()
    assert hang.cancelled == 1  # the deadline cut the first try short
    assert kinds(emulator.sent(A)) == ["help", "welcome"]  # then once each, in order
    assert await no_dead_letters(bot)


# ---- supervision --------------------------------------------------------------------------------
async def test_a_crashed_inbox_worker_is_restarted_and_the_bot_keeps_answering(
    make_bot: MakeBot,
    emulator: BotApiEmulator,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="memorybot.supervisor")
    bot = await make_bot()
    assert bot.runtime is not None
    worker = bot.runtime.worker
    crash = FailFirst(worker._claim_round, 1, lambda: RuntimeError("a bug in the claim loop"))
    monkeypatch.setattr(worker, "_claim_round", crash)
    [first] = await bot.say(A, "/help")  # the intake may claim it before the loop crashes

    def crashed() -> bool:
        return any("task=inbox failed" in r.getMessage() for r in caplog.records)

    for _ in range(200):  # the worker's next round (at most a poll away) crashes
        if crashed():
            break
        await asyncio.sleep(0.05)
    [second] = await bot.say(B, "/start")  # answered by the restarted loop
    assert crash.failed == 1
    assert crashed()
    assert HELP in (first.text or "")
    assert WELCOME in (second.text or "")
    assert all(not task.done() for task in bot.runtime.tasks)  # still supervised, running


# ---- SIGTERM ------------------------------------------------------------------------------------
async def test_stopping_with_a_hung_lane_is_bounded_and_the_update_waits_for_the_next_start(
    make_bot: MakeBot, emulator: BotApiEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    bot = await make_bot(shutdown_grace_s=0.5, update_deadline_s=600)
    assert bot.processor is not None
    hang = Hang(bot.processor, A)
    monkeypatch.setattr(bot.processor, "run_once", hang)
    emulator.user_message(A, "/help")
    await asyncio.wait_for(hang.hung.wait(), timeout=10)
    await asyncio.wait_for(bot.stop(), timeout=15)  # not the 600 s deadline
    assert hang.cancelled == 1
    assert emulator.pending_updates() == 0  # it was confirmed: it is in the inbox
    assert await inbox_pending(bot.settings) == 1
    assert emulator.sent(A) == []
    await bot.start()  # the next start processes it
    [answer] = await emulator.wait_for(chat_id=A, count=1)
    await bot.settled()
    assert HELP in (answer.text or "")
    assert len(emulator.sent(A)) == 1
    assert await no_dead_letters(bot)
