"""#tags and time filters through the real Application and the Bot API emulator, both DBs."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from botapi_emulator import BotApiEmulator, SentMessage
from engine.clock import utcnow
from engine.settings import Settings
from storage.models import MemoryRow, UserRow
from tests.e2e.conftest import BotUnderTest

pytestmark = pytest.mark.dates

A, B = 101, 202
GROUP = -1_001_000_000_077
SHORT_ID = re.compile(r"<code>([0-9a-f]{8})</code>")
APOLOGY = "Sorry, something went wrong"


@pytest.fixture
async def bot(settings: Settings, emulator: BotApiEmulator) -> AsyncIterator[BotUnderTest]:
    """A and B are members of GROUP (A created it)."""
    emulator.create_group(GROUP, title="team", members=[B], creator=A)
    under_test = BotUnderTest(settings, emulator)
    await under_test.start()
    yield under_test
    await under_test.stop()
    apologies = [m.text for m in emulator.sent() if APOLOGY in (m.text or "")]
    assert not apologies, apologies


def plain(message: SentMessage) -> str:
    return message.plain or ""


def buttons(message: SentMessage) -> list[str]:
    rows = (message.reply_markup or {}).get("inline_keyboard", [])
    return [str(b["text"]) for row in rows for b in row]


async def save(bot: BotUnderTest, user_id: int, text: str, chat_id: int | None = None) -> str:
    """Save `text` through the bot; returns the memory's short id."""
    command = f"/save {text}" if chat_id else text
    [saved] = await bot.say(user_id, command, chat_id=chat_id or user_id)
    found = SHORT_ID.search(saved.text or "")
    assert found, saved.text
    return found.group(1)


async def backdate(bot: BotUnderTest, space: int, short_id: str, when: datetime) -> None:
    memory = await bot.engine.reads.resolve(space_id=space, ref=short_id)
    async with bot.engine.stores.unit_of_work("test_backdate") as uow:
        await uow.session.execute(
            update(MemoryRow).where(MemoryRow.id == memory.id).values(created_at=when)
        )


def last_week_noon() -> datetime:
    """Wednesday noon (UTC) of the week before this one."""
    today = utcnow().date()
    monday = today - timedelta(days=today.weekday() + 7)
    return datetime(monday.year, monday.month, monday.day, 12, tzinfo=UTC) + timedelta(days=2)


async def test_list_by_tag_and_tags_with_counts(bot: BotUnderTest) -> None:
    await bot.say(A, "/start")
    plan = await save(bot, A, "plan the sprint #work")
    review = await save(bot, A, "#Work review notes for friday")
    milk = await save(bot, A, "buy milk #home")
    await save(bot, A, "call mom")
    await save(bot, A, "I write C# at #work and #home")
    [listed] = await bot.say(A, "/list #work")
    assert plain(listed).startswith("🔎 #work: 1–3 of 3")
    assert plan in (listed.text or "")
    assert review in (listed.text or "")
    assert milk not in (listed.text or "")
    assert "call mom" not in plain(listed)
    [tags] = await bot.say(A, "/tags")
    assert "#work · 3\n#home · 2" in plain(tags)
    assert "#c " not in plain(tags)


async def test_edit_changes_tags(bot: BotUnderTest) -> None:
    await bot.say(A, "/start")
    ref = await save(bot, A, "the offer letter #draft")
    [edited] = await bot.say(A, f"/edit {ref} the offer letter #final")
    assert "Updated" in plain(edited)
    [tags] = await bot.say(A, "/tags")
    assert "#final · 1" in plain(tags)
    assert "#draft" not in plain(tags)
    [none] = await bot.say(A, "/list #draft")
    assert "No memories with #draft" in plain(none)
    assert "without the filter" in plain(none)


async def test_recall_within_a_tag(bot: BotUnderTest) -> None:
    await bot.say(A, "/start")
    trip = await save(bot, A, "#trip passport is in the hotel safe")
    work = await save(bot, A, "passport renewal form is at the office #work")
    [found] = await bot.say(A, "/recall #trip passport")
    assert plain(found).startswith("🔎 passport · #trip")
    assert trip in (found.text or "")
    assert work not in (found.text or "")
    [only_tag] = await bot.say(A, "/recall #trip")
    assert plain(only_tag).startswith("🔎 #trip: 1 memory")
    assert trip in (only_tag.text or "")
    [nothing] = await bot.say(A, "/recall #trip dentist appointment in 2019")
    assert "Nothing found for dentist appointment with #trip · in 2019" in plain(nothing)
    assert "Try without the filter: /recall dentist appointment" in plain(nothing)


async def test_unicode_tags_match_in_any_case(bot: BotUnderTest) -> None:
    await bot.say(A, "/start")
    ref = await save(bot, A, "#Работа отчёт до пятницы")
    cafe = await save(bot, A, "meet at the #Café on the corner")
    for query in ("/list #работа", "/list #РАБОТА"):
        [listed] = await bot.say(A, query)
        assert ref in (listed.text or ""), query
        assert cafe not in (listed.text or "")
    [listed] = await bot.say(A, "/list #café")
    assert cafe in (listed.text or "")


async def test_time_filters_say_which_range_they_used(bot: BotUnderTest) -> None:
    await bot.say(A, "/start")
    old = await save(bot, A, "my passport is in the blue drawer")
    new = await save(bot, A, "passport photos are ready at the shop")
    await backdate(bot, A, old, last_week_noon())
    [found] = await bot.say(A, "/recall passport last week")
    monday = last_week_noon() - timedelta(days=2)
    assert plain(found).startswith(f"🔎 passport · last week (Mon {monday.day} {monday:%b}")
    assert "UTC)" in plain(found)
    assert old in (found.text or "")
    assert new not in (found.text or "")
    [today] = await bot.say(A, "/list today")
    assert new in (today.text or "")
    assert old not in (today.text or "")
    since = (utcnow() - timedelta(days=1)).date().isoformat()
    [listed] = await bot.say(A, f"/list since {since}")
    assert "🔎 since" in plain(listed)
    assert new in (listed.text or "")
    assert old not in (listed.text or "")
    [before] = await bot.say(A, f"/list before {since}")
    assert old in (before.text or "")
    assert new not in (before.text or "")


async def test_the_users_time_zone_is_used(bot: BotUnderTest) -> None:
    await bot.say(A, "/start")
    await save(bot, A, "something to find")
    async with bot.engine.stores.unit_of_work("test_tz") as uow:
        await uow.session.execute(
            update(UserRow).where(UserRow.id == A).values(timezone="Asia/Tokyo")
        )
    [listed] = await bot.say(A, "/list last 7 days")
    assert "Asia/Tokyo)" in plain(listed)


async def test_paging_keeps_the_filter(bot: BotUnderTest) -> None:
    await bot.say(A, "/start")
    await bot.engine.writes.save_many(
        space_id=A, texts=[f"item {i} #many" for i in range(12)] + ["other 1", "other 2"]
    )
    [listed] = await bot.say(A, "/list #many")
    assert plain(listed).startswith("🔎 #many: 1–10 of 12")
    assert buttons(listed) == ["Older ▶"]
    await bot.press(A, listed, 0)
    assert plain(listed).startswith("🔎 #many: 11–12 of 12")
    assert "other" not in plain(listed)
    [found] = await bot.say(A, "/recall #many")
    assert buttons(found)[-1] == "More ▶"
    first = set(SHORT_ID.findall(found.text or ""))
    await bot.press(A, found, 5)
    second = set(SHORT_ID.findall(found.text or ""))
    assert len(first | second) == 10
    assert "other" not in plain(found)
    [unfiltered] = await bot.say(A, "/list")
    assert plain(unfiltered).startswith("🧠 Your memories 1–10 of 14")
    await bot.press(A, listed, 0)  # ◀ Newer: the filtered list keeps its filter
    assert plain(listed).startswith("🔎 #many: 1–10 of 12")
    [newer] = await bot.say(A, "/list #many today")  # a newer filtered list takes the memo
    assert plain(newer).startswith("🔎 #many · today (")
    answer = await bot.press(A, listed, 0)  # the older filtered list's button has expired
    assert answer["text"] == "This button has expired."


async def test_list_refuses_words_and_future_ranges(bot: BotUnderTest) -> None:
    await bot.say(A, "/start")
    [usage] = await bot.say(A, "/list march of the penguins")
    assert "/list shows memories by #tag and time" in plain(usage)
    assert "/recall march of the penguins" in plain(usage)
    [future] = await bot.say(A, "/list since 2099-01-01")
    assert "in the future" in plain(future)


async def test_group_tags_never_show_in_private_and_back(bot: BotUnderTest) -> None:
    await bot.say(A, "/start")
    mine = await save(bot, A, "my diary #secret")
    team = await save(bot, A, "standup moved to 10 #teamtag", chat_id=GROUP)
    [private_tags] = await bot.say(A, "/tags")
    assert "#secret · 1" in plain(private_tags)
    assert "teamtag" not in plain(private_tags)
    [group_tags] = await bot.say(B, "/tags", chat_id=GROUP)
    assert plain(group_tags).startswith("🏷 This group's tags")
    assert "#teamtag · 1" in plain(group_tags)
    assert "secret" not in plain(group_tags)
    [in_private] = await bot.say(A, "/list #teamtag")
    assert team not in (in_private.text or "")
    assert "No memories with #teamtag" in plain(in_private)
    [in_group] = await bot.say(B, "/recall #secret diary", chat_id=GROUP)
    assert mine not in (in_group.text or "")
