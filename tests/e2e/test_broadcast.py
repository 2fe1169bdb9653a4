"""Broadcasts end to end: 1,000 recipients, blocked users, a 429, the rate cap, cancel, and chat.

The bot runs in-process against the Bot API emulator with ADMIN as its admin. Recipients are
registered straight through the engine; the admin drives everything through real commands and
button presses.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any, NamedTuple

import pytest
from sqlalchemy import select

from bot.handlers.common import EXPIRED
from botapi_emulator import BotApiEmulator, SentMessage
from engine.broadcast_types import BroadcastProgress
from engine.settings import Settings
from jobs.delivery import CONCURRENCY
from storage.models import UserRow
from storage.repositories.broadcasts import BroadcastRepository
from tests.e2e.conftest import BotUnderTest

ADMIN, OTHER = 9_201, 9_202
FIRST_RECIPIENT = 600_001
TEXT = "Maintenance tonight at 22:00 UTC (R&D <3): the bot may be slow for ten minutes."
DONE_TIMEOUT_S = 120.0


@contextlib.asynccontextmanager
async def running(
    settings: Settings, emulator: BotApiEmulator, *, rate: float, max_rate: int = 0
) -> AsyncIterator[BotUnderTest]:
    """The bot with ADMIN as admin, broadcasting at `rate`, sending at most `max_rate`
    messages a second overall (0: the bot's own limiter is off)."""
    variant = settings.model_copy(
        update={"admin_user_ids": (ADMIN,), "broadcast_rate": rate, "telegram_max_rate": max_rate}
    )
    under_test = BotUnderTest(variant, emulator)
    await under_test.start()
    try:
        yield under_test
    finally:
        await under_test.stop()


def text_of(message: SentMessage) -> str:
    return message.text or ""


async def register(bot: BotUnderTest, count: int) -> list[int]:
    """Register `count` recipients directly through the engine; returns their ids."""
    ids = list(range(FIRST_RECIPIENT, FIRST_RECIPIENT + count))
    for start in range(0, count, 25):
        chunk = ids[start : start + 25]
        await asyncio.gather(*(bot.engine.users.register(user_id=uid) for uid in chunk))
    return ids


def received(emulator: BotApiEmulator) -> Counter[int]:
    """How many copies of the broadcast each chat received."""
    return Counter(m.chat_id for m in emulator.sent() if m.text == TEXT)


def send_attempts(emulator: BotApiEmulator, chats: set[int]) -> int:
    """sendMessage requests to `chats` that reached the emulator (failed ones included)."""
    return sum(
        method.lower() == "sendmessage" and int(params.get("chat_id", 0)) in chats
        for _, method, params in emulator.calls
    )


async def eventually(
    condition: Callable[[], bool], what: str, *, within: float = DONE_TIMEOUT_S
) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {within:.0f}s waiting for {what}"
        await asyncio.sleep(0.02)


async def progress_of(bot: BotUnderTest, broadcast_id: int) -> BroadcastProgress:
    progress = await bot.engine.broadcasts.progress(broadcast_id)
    assert progress is not None
    return progress


class Started(NamedTuple):
    preview: SentMessage
    broadcast_id: int
    sends_before: Counter[int]  # sends_per_second() just before Send was pressed


async def start_broadcast(bot: BotUnderTest, recipients: int) -> Started:
    """/broadcast TEXT, check the preview, press Send."""
    [preview] = await bot.say(ADMIN, f"/broadcast {TEXT}")
    body = text_of(preview)
    assert f"this goes to <b>{recipients}</b> active users" in body
    assert "R&amp;D &lt;3" in body, "the preview shows the text escaped"
    assert await bot.engine.broadcasts.ids() == [], "nothing is queued before Send"
    before = Counter(bot.emulator.sends_per_second())
    answer = await bot.press(ADMIN, preview, 0)
    assert answer["text"] == "Sending"
    [broadcast_id] = await bot.engine.broadcasts.ids()
    return Started(preview, broadcast_id, before)


async def wait_done(
    bot: BotUnderTest, broadcast_id: int, status: str, preview: SentMessage
) -> tuple[BroadcastProgress, set[str]]:
    """Poll until the broadcast reaches `status`; returns it and every preview text seen."""
    seen: set[str] = set()
    deadline = time.monotonic() + DONE_TIMEOUT_S
    while True:
        seen.add(text_of(preview))
        progress = await progress_of(bot, broadcast_id)
        if progress.status == status:
            return progress, seen
        assert progress.status == "sending", progress
        assert time.monotonic() < deadline, f"not {status} after {DONE_TIMEOUT_S:.0f}s: {progress}"
        await asyncio.sleep(0.1)


async def inactive_users(bot: BotUnderTest) -> set[int]:
    async with bot.engine.stores.db.reads() as session:
        return set(await session.scalars(select(UserRow.id).where(~UserRow.is_active)))


async def test_send_through_a_store_blip_queues_exactly_one_broadcast(
    settings: Settings, emulator: BotApiEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The confirmation is cleared in the broadcast's own transaction: a failure rolls both
    back and the retry sends (it answered "expired" and sent nothing: issue 30); a second
    press after that finds the confirmation gone: never two broadcasts."""
    real_create = BroadcastRepository.create
    failures = [RuntimeError("the database blinked")]

    async def create_once_failing(self: BroadcastRepository, **fields: Any) -> Any:
        if failures:
            raise failures.pop()
        return await real_create(self, **fields)

    monkeypatch.setattr(BroadcastRepository, "create", create_once_failing)
    async with running(settings, emulator, rate=50) as bot:
        await register(bot, 3)
        [preview] = await bot.say(ADMIN, f"/broadcast {TEXT}")
        markup = preview.reply_markup or {}
        send = str(markup["inline_keyboard"][0][0]["callback_data"])
        answer = await bot.press(ADMIN, preview, 0)
        assert answer["text"] == "Sending"
        assert not failures, "the first attempt failed"
        [broadcast_id] = await bot.engine.broadcasts.ids()
        answered = len(emulator.callback_answers)
        emulator.press_button(ADMIN, preview.message_id, send, strict=False)  # a second tap
        for _ in range(200):
            if len(emulator.callback_answers) > answered:
                break
            await asyncio.sleep(0.05)
        assert emulator.callback_answers[answered]["text"] == EXPIRED
        assert await bot.engine.broadcasts.ids() == [broadcast_id]


# ---- the big one -------------------------------------------------------------------------------
async def test_thousand_users_with_blocks_and_a_429_each_get_one_copy(
    settings: Settings, emulator: BotApiEmulator
) -> None:
    rate = 100
    async with running(settings, emulator, rate=rate) as bot:
        users = await register(bot, 1000)
        blocked = set(users[::20])
        for uid in blocked:
            emulator.block(uid)
        await bot.say(ADMIN, "/start")
        reachable = (set(users) - blocked) | {ADMIN}

        preview, broadcast_id, before = await start_broadcast(bot, recipients=1001)
        await eventually(lambda: sum(received(emulator).values()) >= 300, "300 deliveries")
        emulator.fail("sendMessage", status=429, retry_after=1)
        progress, previews = await wait_done(bot, broadcast_id, "done", preview)
        final = (
            f"✅ Broadcast #{broadcast_id} to 1001 users\n"
            f"sent {len(reachable)} · failed 0 · blocked {len(blocked)} · remaining 0"
        )
        await eventually(lambda: text_of(preview) == final, "the final progress edit", within=15)
        await asyncio.sleep(0.5)  # nothing else trickles out afterwards
        during = Counter(emulator.sends_per_second()) - before
        assert await inactive_users(bot) == blocked, "blocked users are made inactive"

    copies = received(emulator)
    assert set(copies) == reachable, "every reachable user got it, no blocked user did"
    assert set(copies.values()) == {1}, [uid for uid, n in copies.items() if n > 1]
    recipients = reachable - {ADMIN}  # the admin's chat also holds the interactive replies
    # The 429 goes to whichever send comes next, a blocked user's too (then 429, then 403).
    attempts = send_attempts(emulator, recipients) + send_attempts(emulator, blocked)
    assert attempts == len(recipients) + len(blocked) + 1, "one 429, retried once"
    assert send_attempts(emulator, blocked) <= len(blocked) + 1, "a 403 is never retried"

    assert (progress.total, progress.sent, progress.blocked) == (1001, len(reachable), 50)
    assert (progress.failed, progress.pending) == (0, 0)

    busiest = max(during.values())
    assert busiest <= rate, (
        f"{busiest} sends in one second (rate {rate}): {sorted(during.items())}"
    )

    assert preview.edits >= 3, "queued, at least one progress report, final"
    running_views = [t for t in previews if "ETA" in t]
    assert running_views, previews
    assert all(t.startswith(f"📣 Broadcast #{broadcast_id} to 1001 users") for t in running_views)


# ---- cancel ------------------------------------------------------------------------------------
async def cancel_after_a_few(bot: BotUnderTest) -> tuple[SentMessage, int, int]:
    """Start a 100-user broadcast at 5/s, /broadcast_cancel after ~2s of sending.

    Returns (preview, broadcast id, copies delivered when the cancel was acknowledged).
    """
    await register(bot, 100)
    await bot.say(ADMIN, "/start")
    preview, broadcast_id, _ = await start_broadcast(bot, recipients=101)
    await eventually(lambda: sum(received(bot.emulator).values()) >= 10, "10 deliveries")
    [stopped] = await bot.say(ADMIN, "/broadcast_cancel")
    assert text_of(stopped) == f"🛑 Broadcast #{broadcast_id} cancelled."
    return preview, broadcast_id, sum(received(bot.emulator).values())


async def test_cancel_stops_a_running_broadcast(
    settings: Settings, emulator: BotApiEmulator
) -> None:
    async with running(settings, emulator, rate=5) as bot:
        preview, broadcast_id, _ = await cancel_after_a_few(bot)
        assert await bot.engine.broadcasts.status(broadcast_id) == "cancelled"
        await eventually(
            lambda: text_of(preview).startswith("🛑 Broadcast (cancelled)"),
            "the worker to let go of the cancelled broadcast",
            within=30,
        )
        settled = sum(received(emulator).values())
        await asyncio.sleep(1.5)  # 7 more sends at 5/s if it had not stopped
        assert sum(received(emulator).values()) == settled, "no sends once it settled"

        progress = await progress_of(bot, broadcast_id)
        assert progress.status == "cancelled"
        assert progress.sent == settled < 101
        assert progress.pending == 101 - settled
        assert text_of(preview).endswith(
            f"sent {settled} · failed 0 · blocked 0 · remaining {101 - settled}"
        )
        [again] = await bot.say(ADMIN, f"/broadcast_cancel {broadcast_id}")
        assert text_of(again) == f"Broadcast #{broadcast_id} is not running."
        [status] = await bot.say(ADMIN, "/broadcast_status")
        assert text_of(status).startswith(f"🛑 Broadcast (cancelled) #{broadcast_id}")
        audit = [e.action for e in await bot.engine.admin.latest_audit(limit=10)]
        assert audit.count("broadcast_cancel") == 2
        assert "broadcast" in audit
    assert set(received(emulator).values()) == {1}


async def test_cancel_takes_effect_within_the_sends_in_flight(
    settings: Settings, emulator: BotApiEmulator
) -> None:
    async with running(settings, emulator, rate=5) as bot:
        preview, _, at_cancel = await cancel_after_a_few(bot)
        await eventually(
            lambda: text_of(preview).startswith("🛑 Broadcast (cancelled)"),
            "the worker to let go of the cancelled broadcast",
            within=30,
        )
        after = sum(received(emulator).values()) - at_cancel
        assert after <= CONCURRENCY, f"{after} copies went out after the admin saw 'cancelled'"


# ---- chat keeps flowing ------------------------------------------------------------------------
async def test_replies_keep_flowing_during_a_broadcast(
    settings: Settings, emulator: BotApiEmulator
) -> None:
    async with running(settings, emulator, rate=50) as bot:
        await register(bot, 1000)
        await bot.say(ADMIN, "/start")
        _, broadcast_id, _ = await start_broadcast(bot, recipients=1001)
        await eventually(lambda: sum(received(emulator).values()) >= 50, "50 deliveries")

        [welcome] = await bot.say(OTHER, "/start")
        assert "I remember things for you" in text_of(welcome)
        progress = await progress_of(bot, broadcast_id)
        assert progress.status == "sending"
        assert progress.pending > 0
        [saved] = await bot.say(OTHER, "the passport is in the blue drawer")
        assert "Saved" in text_of(saved)
        [status] = await bot.say(ADMIN, "/broadcast_status")
        assert text_of(status).startswith(f"📣 Broadcast #{broadcast_id} to 1001 users")
        assert "ETA" in text_of(status)
        assert await bot.engine.broadcasts.status(broadcast_id) == "sending"

        assert await bot.engine.broadcasts.cancel(broadcast_id=broadcast_id, actor_id=ADMIN)
    assert OTHER not in received(emulator), "a user who arrived later is not a recipient"
    assert set(received(emulator).values()) == {1}


async def test_replies_and_a_broadcast_share_the_bots_budget(
    settings: Settings, emulator: BotApiEmulator
) -> None:
    budget = 12  # TELEGRAM_MAX_RATE: every message of the bot, to any chat, per second
    async with running(settings, emulator, rate=100, max_rate=budget) as bot:
        await register(bot, 60)
        await bot.say(ADMIN, "/start")
        preview, broadcast_id, before = await start_broadcast(bot, recipients=61)
        await eventually(lambda: sum(received(emulator).values()) >= 5, "5 deliveries")
        for n in range(4):  # replies are not starved by the broadcast
            [saved] = await bot.say(OTHER, f"note number {n} about the garden hose")
            assert "Saved" in text_of(saved)
        await wait_done(bot, broadcast_id, "done", preview)
        during = Counter(emulator.sends_per_second()) - before
    assert set(received(emulator).values()) == {1}
    # The limiter's window runs on send times, the emulator counts arrivals per whole
    # second: a message sent just before a second ends may arrive just after it.
    busiest = max(during.values())
    assert busiest <= budget + 2, f"{busiest} messages in one second: {sorted(during.items())}"


async def test_a_429_retry_stays_within_the_rate(
    settings: Settings, emulator: BotApiEmulator
) -> None:
    rate = 5
    async with running(settings, emulator, rate=rate) as bot:
        await register(bot, 30)
        await bot.say(ADMIN, "/start")
        preview, broadcast_id, _ = await start_broadcast(bot, recipients=31)
        await eventually(lambda: sum(received(emulator).values()) >= 10, "10 deliveries")
        emulator.fail("sendMessage", status=429, retry_after=1)
        await wait_done(bot, broadcast_id, "done", preview)
    assert set(received(emulator).values()) == {1}
    sends = [  # the broadcast's sends (ADMIN gets a copy too: the 429 may land on it)
        (stamp, int(params["chat_id"]))
        for stamp, method, params in emulator.calls
        if method.lower() == "sendmessage" and params.get("text") == TEXT
    ]
    per_chat = Counter(chat for _, chat in sends)
    twice = [c for c, n in per_chat.items() if n == 2]
    assert len(twice) == 1, f"chats sent to twice: {twice}; {sorted(per_chat.items())}"
    [throttled] = twice
    refused_at = next(stamp for stamp, chat in sends if chat == throttled)
    retried_at = max(stamp for stamp, chat in sends if chat == throttled)
    window = [stamp for stamp, _ in sends if retried_at - 1.0 < stamp <= retried_at]
    assert retried_at - refused_at >= 1.0, "the retry waited as Telegram asked"
    assert len(window) <= rate, f"{len(window)} sends in the second up to the retried one"
