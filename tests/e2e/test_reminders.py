"""Reminders through the real Application and the Bot API emulator, on both databases."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from botapi_emulator import BotApiEmulator, SentMessage
from engine.reminders import DONE, FAILED, SCHEDULED, Reminder
from engine.schedule import Schedule
from engine.settings import Settings
from engine.zones import show
from tests.e2e.conftest import BotUnderTest

pytestmark = pytest.mark.dates

ANN, BEN, CARL = 31_001, 31_002, 31_003
FORUM = -1_000_000_310_001
BUTTONS = ["✅ Done", "💤 1 h", "💤 tomorrow"]


@pytest.fixture
async def bot(settings: Settings, emulator: BotApiEmulator) -> AsyncIterator[BotUnderTest]:
    """The bot, with a forum (ANN its creator and admin, BEN a member)."""
    emulator.create_group(FORUM, title="club", forum=True, members=[BEN, CARL], creator=ANN)
    under_test = BotUnderTest(settings, emulator)
    await under_test.start()
    yield under_test
    await under_test.stop()


@pytest.fixture
def send_times(emulator: BotApiEmulator) -> dict[int, float]:
    """Wall-clock time of each bot message, by message id (recorded as the emulator stores it)."""
    stamps: dict[int, float] = {}
    record = emulator.record_sent

    def recording(message: SentMessage) -> None:
        stamps[message.message_id] = time.time()
        record(message)

    emulator.record_sent = recording  # type: ignore[method-assign]
    return stamps


def delivered(emulator: BotApiEmulator, chat_id: int, text: str) -> list[SentMessage]:
    return [m for m in emulator.sent(chat_id) if (m.text or "").startswith(f"⏰ {text}")]


async def wait_delivered(
    bot: BotUnderTest, chat_id: int, text: str, count: int = 1, within: float = 20.0
) -> list[SentMessage]:
    await bot.emulator.wait_for(
        lambda _: len(delivered(bot.emulator, chat_id, text)) >= count, timeout=within
    )
    return delivered(bot.emulator, chat_id, text)


def labels(message: SentMessage) -> list[str]:
    rows = (message.reply_markup or {}).get("inline_keyboard", [])
    return [str(b["text"]) for row in rows for b in row]


async def due_soon(
    bot: BotUnderTest, user: int, text: str, *, seconds: float, space: int | None = None
) -> Reminder:
    """A reminder made straight in the engine, due `seconds` from now (may be negative)."""
    due = datetime.now(UTC) + timedelta(seconds=seconds)
    return await bot.engine.reminders.create(
        space_id=space or user, user_id=user, schedule=Schedule(due, text), timezone="UTC"
    )


async def forged_press(bot: BotUnderTest, user: int, message: SentMessage, data: str) -> str:
    """Press `data` on `message` though no button carries it (a client can send any data)."""
    answered = len(bot.emulator.callback_answers)
    bot.emulator.press_button(
        user, message.message_id, data, chat_id=message.chat_id, strict=False
    )
    for _ in range(200):
        if len(bot.emulator.callback_answers) > answered:
            return str(bot.emulator.callback_answers[answered]["text"])
        await asyncio.sleep(0.05)
    raise AssertionError(f"no answer to {data}")


async def state(bot: BotUnderTest, space: int, reminder_id: int) -> Reminder:
    found = await bot.engine.reminders.get(space_id=space, reminder_id=reminder_id)
    assert found is not None
    return found


async def test_timezone_shows_sets_and_refuses_unknown_zones(bot: BotUnderTest) -> None:
    [shown] = await bot.say(ANN, "/timezone")
    assert "<b>UTC</b> (not chosen yet)" in (shown.text or "")
    [refused] = await bot.say(ANN, "/timezone Mars/Base")
    assert "I don't know the time zone “Mars/Base”" in (refused.text or "")
    assert "/timezone Europe/Berlin" in (refused.text or "")
    [chosen] = await bot.say(ANN, "/timezone europe/berlin")
    assert "Time zone set to <b>Europe/Berlin</b>" in (chosen.text or "")
    [shown] = await bot.say(ANN, "/timezone")
    assert "Your time zone is <b>Europe/Berlin</b>;" in (shown.text or "")
    user = await bot.engine.users.get(user_id=ANN)
    assert user is not None
    assert user.timezone == "Europe/Berlin"


async def test_the_first_remind_says_once_that_times_are_utc(bot: BotUnderTest) -> None:
    [first] = await bot.say(ANN, "/remind tomorrow 9:00 call the dentist")
    assert "Times are read in UTC" in (first.text or "")
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).replace(hour=9, minute=0)
    assert f"<b>{show(tomorrow, ZoneInfo('UTC'))}</b>: call the dentist" in (first.text or "")
    [second] = await bot.say(ANN, "/remind tomorrow 10:00 book the car service")
    assert "Times are read in UTC" not in (second.text or "")
    await bot.say(ANN, "/timezone Asia/Tokyo")
    [third] = await bot.say(ANN, "/remind every monday 9:00 weekly report")
    assert "Asia/Tokyo (every Monday at 09:00)</b>: weekly report" in (third.text or "")


async def test_bad_times_get_a_friendly_answer_with_examples(bot: BotUnderTest) -> None:
    [alone] = await bot.say(ANN, "/remind")
    assert "/remind tomorrow 9:00 call the dentist" in (alone.text or "")
    [garbage] = await bot.say(ANN, "/remind whenever you like water plants")
    assert "couldn't read a time" in (garbage.text or "")
    assert "/remind every day 8:00 vitamins" in (garbage.text or "")
    [past] = await bot.say(ANN, "/remind 2020-01-01 10:00 old news")
    assert "has already passed" in (past.text or "")
    assert await bot.engine.reminders.upcoming(space_id=ANN) == []
    assert (await bot.engine.reads.page(space_id=ANN)).total == 0


async def test_remind_delivers_once_at_its_time_with_buttons_and_done(
    bot: BotUnderTest, send_times: dict[int, float]
) -> None:
    [confirmed] = await bot.say(ANN, "/remind in 3s stretch your legs")
    assert "I'll remind you on" in (confirmed.text or "")
    [reminder] = await bot.engine.reminders.upcoming(space_id=ANN)
    [message] = await wait_delivered(bot, ANN, "stretch your legs")
    assert send_times[message.message_id] >= reminder.due_at.timestamp(), "sent early"
    assert message.text == "⏰ stretch your legs"
    assert labels(message) == BUTTONS
    await asyncio.sleep(1.5)  # a second delivery would come within the worker's poll
    assert len(delivered(bot.emulator, ANN, "stretch your legs")) == 1
    assert (await state(bot, ANN, reminder.id)).status == DONE
    answer = await bot.press(ANN, message, 0)
    assert answer["text"] == "Done."
    assert message.text == "⏰ stretch your legs\n✅ Done"
    assert labels(message) == []


async def test_snooze_an_hour_and_until_tomorrow(bot: BotUnderTest) -> None:
    await bot.say(BEN, "/timezone America/New_York")
    hour = await due_soon(bot, BEN, "feed the cat", seconds=0.5)
    later = await due_soon(bot, BEN, "pay the rent", seconds=0.5)
    [first] = await wait_delivered(bot, BEN, "feed the cat")
    [second] = await wait_delivered(bot, BEN, "pay the rent")
    pressed_at = datetime.now(UTC)
    assert (await bot.press(BEN, first, 1))["text"] == "Snoozed."
    snoozed = await state(bot, BEN, hour.id)
    assert snoozed.status == SCHEDULED
    assert timedelta(minutes=59) < snoozed.due_at - pressed_at <= timedelta(minutes=61)
    assert "💤 Snoozed until" in (first.text or "")
    assert labels(first) == []
    assert (await bot.press(BEN, second, 2))["text"] == "Snoozed."
    tomorrow = (await state(bot, BEN, later.id)).due_at
    # The reminder was set in UTC: "tomorrow" is 9:00 tomorrow in that zone.
    assert (tomorrow.hour, tomorrow.minute) == (9, 0)
    assert tomorrow.date() == (datetime.now(UTC) + timedelta(days=1)).date()


async def test_reminders_lists_and_cancels(bot: BotUnderTest) -> None:
    await bot.say(ANN, "/timezone Europe/Berlin")
    # Three days on is always after tomorrow 9:00, whatever the day and hour (not so "monday":
    # on a Monday before 9:00 Berlin time it came first).
    weekday = (datetime.now(ZoneInfo("Europe/Berlin")) + timedelta(days=3)).strftime("%A")
    await bot.say(ANN, "/remind tomorrow 9:00 call the plumber")
    await bot.say(ANN, f"/remind every {weekday.lower()} 9:00 weekly report")
    [listing] = await bot.say(ANN, "/reminders")
    text = listing.text or ""
    assert text.index("call the plumber") < text.index("weekly report")
    assert f"Europe/Berlin (every {weekday} at 09:00)</b> — weekly report" in text
    assert labels(listing) == ["✖ 1", "✖ 2"]
    assert (await bot.press(ANN, listing, 0))["text"] == "Cancelled."
    assert "call the plumber" not in (listing.text or "")
    assert labels(listing) == ["✖ 1"]
    [left] = await bot.engine.reminders.upcoming(space_id=ANN)
    assert left.text == "weekly report"
    [memories] = await bot.say(ANN, "/list")
    assert "call the plumber" in (memories.text or ""), "cancelling keeps the memory"
    assert (await bot.press(ANN, listing, 0))["text"] == "Cancelled."
    [empty] = await bot.say(ANN, "/reminders")
    assert "No upcoming reminders" in (empty.text or "")


async def test_a_reminder_is_recallable_and_forgetting_it_stops_it(bot: BotUnderTest) -> None:
    await bot.say(ANN, "/remind tomorrow 9:00 renew the passport at the town hall")
    [found] = await bot.say(ANN, "/recall passport renewal")
    assert "renew the passport at the town hall" in (found.text or "")
    [reminder] = await bot.engine.reminders.upcoming(space_id=ANN)
    await bot.say(ANN, f"/forget {reminder.memory_id.hex[:8]}")
    assert await bot.engine.reminders.upcoming(space_id=ANN) == []


async def test_a_late_reminder_says_so(bot: BotUnderTest) -> None:
    await bot.say(ANN, "/start")
    await due_soon(bot, ANN, "take the medicine", seconds=-300)  # due while we were down
    [message] = await wait_delivered(bot, ANN, "take the medicine")
    assert "(late) it was due" in (message.text or "")
    await due_soon(bot, ANN, "drink water", seconds=-5)  # a few seconds is on time
    [on_time] = await wait_delivered(bot, ANN, "drink water")
    assert "(late)" not in (on_time.text or "")


async def test_group_reminders_go_to_the_group_topic(bot: BotUnderTest) -> None:
    topic = bot.emulator.create_topic(FORUM, "chores")
    [confirmed] = await bot.say(
        BEN, "/remind in 2s take the bins out", chat_id=FORUM, thread_id=topic
    )
    assert "I'll remind this chat on" in (confirmed.text or "")
    [message] = await wait_delivered(bot, FORUM, "take the bins out")
    assert message.thread_id == topic
    # another member forging the buttons' data with their own id answers nothing (issue 30)
    done_data = str(message.reply_markup["inline_keyboard"][0][0]["callback_data"])  # type: ignore[index]
    reminder_id = int(done_data.rsplit(":", 1)[1])
    before = await state(bot, FORUM, reminder_id)
    for _ in range(100):  # the delivery marks it done just after the send
        if before.status != "sending":
            break
        await asyncio.sleep(0.05)
        before = await state(bot, FORUM, reminder_id)
    assert before.status == DONE
    for action in ("rd", "rh", "rt"):
        answer = await forged_press(bot, CARL, message, f"{action}:{CARL}:{reminder_id}")
        assert answer == "Only who set it or a group admin can answer it."
    assert await state(bot, FORUM, reminder_id) == before
    assert await bot.engine.reminders.upcoming(space_id=BEN) == [], "not in BEN's own space"
    await bot.say(BEN, "/remind tomorrow 9:00 water the club plants", chat_id=FORUM)
    [listing] = await bot.say(ANN, "/reminders", chat_id=FORUM)
    assert "water the club plants" in (listing.text or "")
    [mine] = await bot.say(CARL, "/reminders")
    assert "water the club plants" not in (mine.text or "")
    assert (await bot.press(ANN, listing, 0))["text"] == "Cancelled.", "an admin may cancel"


async def test_a_blocked_chat_fails_its_reminder_without_retrying(bot: BotUnderTest) -> None:
    await bot.say(CARL, "/start")
    bot.emulator.block(CARL)
    reminder = await due_soon(bot, CARL, "never arrives", seconds=0)
    for _ in range(200):
        if (await state(bot, CARL, reminder.id)).status == FAILED:
            break
        await asyncio.sleep(0.05)
    assert (await state(bot, CARL, reminder.id)).status == FAILED
    await asyncio.sleep(1.5)
    tries = [
        c
        for c in bot.emulator.calls
        if c[1] == "sendMessage" and str(c[2].get("chat_id")) == str(CARL)
    ]
    assert len([c for c in tries if "never arrives" in str(c[2].get("text"))]) == 1


async def test_many_reminders_due_together_all_go_out_once(bot: BotUnderTest) -> None:
    users = [40_000 + i for i in range(40)]
    for user in users:
        await bot.engine.users.register(user_id=user)
    due = datetime.now(UTC) + timedelta(seconds=1)
    for user in users:
        for n in (1, 2):
            await bot.engine.reminders.create(
                space_id=user, user_id=user, schedule=Schedule(due, f"batch {n}"), timezone="UTC"
            )
    for user in users:
        await wait_delivered(bot, user, "batch 2", within=30)
    await asyncio.sleep(1.5)
    for user in users:
        assert [m.text for m in delivered(bot.emulator, user, "batch")] == [
            "⏰ batch 1",
            "⏰ batch 2",
        ]
