"""Every command and message kind, through the real Application and the Bot API emulator."""

from __future__ import annotations

import html
import json
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from botapi_emulator import SentMessage
from engine.clock import utcnow
from engine.faults import Step
from tests.e2e.conftest import BotUnderTest

A, B = 101, 202
SHORT_ID = re.compile(r"<code>([0-9a-f]{8})</code>")
APOLOGY = "Sorry, something went wrong"


@pytest.fixture(autouse=True)
async def _no_apology(bot: BotUnderTest) -> AsyncIterator[None]:
    """No reply ever failed (a bad HTML escape makes sendMessage answer 400 → apology)."""
    yield
    apologies = [m.text for m in bot.emulator.sent() if APOLOGY in (m.text or "")]
    assert not apologies, apologies


def short_id(message: SentMessage) -> str:
    match = SHORT_ID.search(message.text or "")
    assert match is not None, message.text
    return match.group(1)


def buttons(message: SentMessage) -> list[str]:
    rows = (message.reply_markup or {}).get("inline_keyboard", [])
    return [str(b["text"]) for row in rows for b in row]


async def texts(bot: BotUnderTest, user_id: int) -> list[str]:
    page = await bot.engine.reads.page(space_id=user_id, limit=1000)
    return [m.text for m in page.items]


async def seed(bot: BotUnderTest, user_id: int, items: list[str]) -> None:
    """Register `user_id` through /start, then save `items` straight into the engine."""
    await bot.say(user_id, "/start")
    await bot.engine.writes.save_many(space_id=user_id, texts=items)


async def new_replies(
    bot: BotUnderTest, chat_id: int, before: int, count: int = 1
) -> list[SentMessage]:
    sent = await bot.emulator.wait_for(chat_id=chat_id, count=before + count)
    return sent[before:]


# ---- /start, /help, /cancel, unknown commands -------------------------------------------------
async def test_start_registers_and_explains_in_three_lines(bot: BotUnderTest) -> None:
    [welcome] = await bot.say(A, "/start")
    assert welcome.plain is not None
    assert len(welcome.plain.splitlines()) == 3
    assert "/recall" in welcome.plain
    assert "/help" in welcome.plain
    assert await bot.engine.users.get(user_id=A) is not None


async def test_help_lists_every_command(bot: BotUnderTest) -> None:
    [shown] = await bot.say(A, "/help")
    menu = [str(c["command"]) for c in bot.emulator.commands]
    assert {"save", "recall", "search", "list", "edit", "forget", "forget_all", "export"} <= set(
        menu
    )
    for command in set(menu) - {"help"}:  # the help text need not name itself
        assert re.search(rf"/{command}\b", shown.plain or ""), command


async def test_cancel_with_nothing_pending(bot: BotUnderTest) -> None:
    [answer] = await bot.say(A, "/cancel")
    assert answer.text == "Nothing to cancel."


async def test_unknown_command_points_at_help(bot: BotUnderTest) -> None:
    [answer] = await bot.say(A, "/frobnicate now")
    assert "/help" in (answer.text or "")
    assert await texts(bot, A) == []


# ---- saving ------------------------------------------------------------------------------------
async def test_save_command_saves(bot: BotUnderTest) -> None:
    [saved] = await bot.say(A, "/save the spare key is under the mat")
    assert re.fullmatch(r"✅ Saved <code>[0-9a-f]{8}</code>\.", saved.text or "")
    page = await bot.engine.reads.page(space_id=A)
    assert [m.text for m in page.items] == ["the spare key is under the mat"]
    assert page.items[0].short_id == short_id(saved)
    assert page.items[0].expires_at is None


async def test_save_addressed_to_the_bot(bot: BotUnderTest) -> None:
    [saved] = await bot.say(A, "/save@memorybot_test_bot\nline one\nline two")
    assert "Saved" in (saved.text or "")
    assert await texts(bot, A) == ["line one\nline two"]


async def test_plain_text_saves(bot: BotUnderTest) -> None:
    [saved] = await bot.say(A, "call mum on sunday")
    assert "Saved" in (saved.text or "")
    assert await texts(bot, A) == ["call mum on sunday"]


async def test_undo_forgets_the_saved_memory(bot: BotUnderTest) -> None:
    [saved] = await bot.say(A, "the wifi password is hunter2")
    assert buttons(saved) == ["↩️ Undo"]
    answer = await bot.press(A, saved)
    assert answer["text"] == f"🗑 Forgot {short_id(saved)}"
    assert saved.edits == 1
    assert "Undone" in (saved.text or "")
    assert await texts(bot, A) == []
    assert (await bot.engine.index.check(space_id=A)).vector_count == 0


@pytest.mark.dates
async def test_save_with_ttl_expires(bot: BotUnderTest) -> None:
    [saved] = await bot.say(A, "/save 7d renew the parking permit")
    assert "it will be deleted on" in (saved.text or "")
    assert "UTC (in 1 week)." in (saved.text or "")
    assert "Want a reminder instead? Use /remind in 1 week" in (saved.text or "")
    [memory] = (await bot.engine.reads.page(space_id=A)).items
    assert memory.text == "renew the parking permit"
    assert memory.expires_at is not None
    expected = utcnow() + timedelta(days=7)
    assert abs((memory.expires_at - expected).total_seconds()) < 60


async def test_zero_ttl_is_refused(bot: BotUnderTest) -> None:
    [answer] = await bot.say(A, "/save 0d x")
    assert "TTL must be at least 1" in (answer.text or "")
    assert "Saved" not in (answer.text or "")
    assert await texts(bot, A) == []


async def test_too_long_text_is_refused(bot: BotUnderTest) -> None:
    [answer] = await bot.say(A, "a" * 5000)
    assert "5,000 characters" in (answer.text or "")
    assert "limit is 4,000" in (answer.text or "")
    assert await texts(bot, A) == []


async def test_photo_caption_is_saved(bot: BotUnderTest) -> None:
    before = len(bot.emulator.sent(A))
    bot.emulator.user_photo(A, caption="receipt for the new bike")
    [saved] = await new_replies(bot, A, before)
    assert "Saved" in (saved.text or "")
    assert await texts(bot, A) == ["receipt for the new bike"]


@pytest.mark.dates
async def test_caption_save_command_applies_ttl(bot: BotUnderTest) -> None:
    before = len(bot.emulator.sent(A))
    bot.emulator.user_photo(A, caption="/save 7d receipt for the new bike")
    await new_replies(bot, A, before)
    [memory] = (await bot.engine.reads.page(space_id=A)).items
    assert memory.text == "receipt for the new bike"
    assert memory.expires_at is not None


async def test_sticker_is_not_text(bot: BotUnderTest) -> None:
    before = len(bot.emulator.sent(A))
    bot.emulator.user_sticker(A)
    [answer] = await new_replies(bot, A, before)
    assert "I can only remember text" in (answer.text or "")
    assert await texts(bot, A) == []


async def test_edited_message_updates_its_memory(bot: BotUnderTest) -> None:
    before = len(bot.emulator.sent(A))
    message_id = bot.emulator.user_message(A, "dinner with Sam on friday")
    [saved] = await new_replies(bot, A, before)
    bot.emulator.user_edit(A, message_id, "dinner with Sam on saturday")
    [updated] = await new_replies(bot, A, before + 1)
    assert updated.text == f"✏️ Updated <code>{short_id(saved)}</code>."
    assert await texts(bot, A) == ["dinner with Sam on saturday"]
    [listed] = await bot.say(A, "/list")
    assert "saturday" in (listed.text or "")
    assert "friday" not in (listed.text or "")
    [found] = await bot.say(A, "/recall when is dinner with Sam")
    assert "saturday" in (found.text or "")


async def test_edit_to_too_long_text_is_refused(bot: BotUnderTest) -> None:
    before = len(bot.emulator.sent(A))
    message_id = bot.emulator.user_message(A, "short and sweet")
    await new_replies(bot, A, before)
    bot.emulator.user_edit(A, message_id, "b" * 5000)
    [refused] = await new_replies(bot, A, before + 1)
    assert "limit is 4,000" in (refused.text or "")
    assert await texts(bot, A) == ["short and sweet"]


async def test_edited_save_command_keeps_text_without_command(bot: BotUnderTest) -> None:
    before = len(bot.emulator.sent(A))
    message_id = bot.emulator.user_message(A, "/save buy milk")
    await new_replies(bot, A, before)
    bot.emulator.user_edit(A, message_id, "/save buy oat milk")
    await new_replies(bot, A, before + 1)
    assert await texts(bot, A) == ["buy oat milk"]


# ---- /recall and /search -----------------------------------------------------------------------
async def test_recall_finds_by_meaning(bot: BotUnderTest) -> None:
    await seed(
        bot,
        A,
        [
            "my passport is in the blue drawer",
            "buy oat milk and bread",
            "the dentist appointment is on friday",
        ],
    )
    [found] = await bot.say(A, "/recall where are my travel documents")
    body = found.plain or ""
    first = body.splitlines()[1]
    assert first.startswith("1. my passport is in the blue drawer")
    assert re.search(r"<code>[0-9a-f]{8}</code> · just now · \d+% match", found.text or "")
    passport = next(
        m for m in (await bot.engine.reads.page(space_id=A)).items if "passport" in m.text
    )
    assert passport.short_id in body.splitlines()[2]
    assert buttons(found)[0] == "🗑 1"


class StoresDown:
    """Stores whose every transaction fails (what the memos' flush meets in an outage)."""

    def unit_of_work(self, op: str) -> Any:
        raise ConnectionResetError("the database went away")

    def reading(self) -> Any:
        raise ConnectionResetError("the database went away")


async def test_a_recall_answered_once_even_if_its_memo_cannot_be_kept(
    bot: BotUnderTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    await seed(bot, A, ["my passport is in the blue drawer"])
    assert bot.processor is not None

    monkeypatch.setattr(bot.processor.services.recalls, "_stores", StoresDown())
    [found] = await bot.say(A, "/recall passport")
    await bot.processor.services.recalls.flush()
    assert "blue drawer" in (found.plain or "")
    await bot.settled()
    assert [m for m in bot.emulator.sent(A) if "blue drawer" in (m.plain or "")] == [found]


async def test_search_is_recall(bot: BotUnderTest) -> None:
    await seed(bot, A, ["my passport is in the blue drawer", "buy oat milk"])
    [found] = await bot.say(A, "/search passport")
    assert "1. my passport is in the blue drawer" in (found.plain or "")


async def test_recall_with_nothing_saved(bot: BotUnderTest) -> None:
    [found] = await bot.say(A, "/recall anything at all")
    assert "Nothing found" in (found.text or "")
    assert found.reply_markup is None


async def test_too_long_query_is_refused(bot: BotUnderTest) -> None:
    [answer] = await bot.say(A, "/recall " + "q" * 5000)
    assert "limit is 4,000" in (answer.text or "")


async def test_recall_more_pages(bot: BotUnderTest) -> None:
    await seed(bot, A, [f"the cat sleeps on sofa number {i}" for i in range(8)])
    [found] = await bot.say(A, "/recall cat")
    lines = (found.plain or "").splitlines()
    assert [line.split(".")[0] for line in lines[1::2]] == ["1", "2", "3", "4", "5"]
    assert buttons(found) == ["🗑 1", "🗑 2", "🗑 3", "🗑 4", "🗑 5", "More ▶"]
    first_page = set(SHORT_ID.findall(found.text or ""))
    answer = await bot.press(A, found, 5)
    assert answer["text"] in (None, "")
    assert found.edits == 1
    lines = (found.plain or "").splitlines()
    assert [line.split(".")[0] for line in lines[1::2]] == ["6", "7", "8"]
    assert buttons(found) == ["🗑 6", "🗑 7", "🗑 8"]
    second_page = set(SHORT_ID.findall(found.text or ""))
    assert len(first_page | second_page) == 8


async def test_recall_delete_button_forgets_that_memory(bot: BotUnderTest) -> None:
    await seed(bot, A, ["my passport is in the blue drawer", "buy oat milk"])
    [found] = await bot.say(A, "/recall passport")
    target = SHORT_ID.findall(found.text or "")[0]
    answer = await bot.press(A, found, 0)
    assert answer["text"] == f"🗑 Forgot {target}"
    assert await texts(bot, A) == ["buy oat milk"]
    assert (await bot.engine.index.check(space_id=A)).vector_count == 1


# ---- /list -------------------------------------------------------------------------------------
async def test_list_pages_older_and_newer(bot: BotUnderTest) -> None:
    items = [f"memory number {i}" for i in range(12)]
    await seed(bot, A, items)
    [listed] = await bot.say(A, "/list")
    assert (listed.plain or "").startswith("🧠 Your memories 1–10 of 12")
    assert buttons(listed) == ["Older ▶"]
    first = re.findall(r"memory number \d+", listed.plain or "")
    assert len(first) == 10
    await bot.press(A, listed, 0)
    assert (listed.plain or "").startswith("🧠 Your memories 11–12 of 12")
    assert buttons(listed) == ["◀ Newer"]
    second = re.findall(r"memory number \d+", listed.plain or "")
    assert sorted(first + second) == sorted(items)
    await bot.press(A, listed, 0)
    assert (listed.plain or "").startswith("🧠 Your memories 1–10 of 12")
    assert re.findall(r"memory number \d+", listed.plain or "") == first


async def test_a_filtered_list_is_sent_once_when_its_memo_cannot_be_kept(
    bot: BotUnderTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The list is out before its memo (for the page buttons) is written behind: a store
    error there is logged, never retried with the update, or the retry sent the list again."""
    await seed(bot, A, ["plan the sprint #work", "buy milk #home"])
    assert bot.processor is not None
    monkeypatch.setattr(bot.processor.services.recalls, "_stores", StoresDown())
    await bot.say(A, "/list #work")
    await bot.processor.services.recalls.flush()
    await bot.settled()
    lists = [m for m in bot.emulator.sent(A) if (m.text or "").startswith("🔎")]
    assert len(lists) == 1, [m.text for m in lists]


async def test_list_when_empty(bot: BotUnderTest) -> None:
    [listed] = await bot.say(A, "/list")
    assert "no memories yet" in (listed.text or "")
    assert listed.reply_markup is None


# ---- /forget, /edit ----------------------------------------------------------------------------
async def test_forget_by_short_id(bot: BotUnderTest) -> None:
    [saved] = await bot.say(A, "the bins go out on tuesday")
    await bot.say(A, "water the plants")
    [answer] = await bot.say(A, f"/forget {short_id(saved)}")
    assert answer.text == f"🗑 Forgot <code>{short_id(saved)}</code>."
    assert await texts(bot, A) == ["water the plants"]


async def test_forget_unknown_id(bot: BotUnderTest) -> None:
    await bot.say(A, "water the plants")
    [answer] = await bot.say(A, "/forget deadbeef")
    assert "No memory deadbeef of yours was found" in (answer.text or "")
    assert len(await texts(bot, A)) == 1


async def test_forget_bad_id(bot: BotUnderTest) -> None:
    await bot.say(A, "water the plants")
    [answer] = await bot.say(A, "/forget <nope>")
    assert "is not a memory id" in (answer.plain or "")
    assert "<nope>" in (answer.plain or "")
    assert len(await texts(bot, A)) == 1


async def test_forget_without_id_shows_usage(bot: BotUnderTest) -> None:
    [answer] = await bot.say(A, "/forget")
    assert "Usage" in (answer.text or "")


async def test_forget_another_users_memory_is_not_found(bot: BotUnderTest) -> None:
    [theirs] = await bot.say(B, "B's locker code is 1234")
    [answer] = await bot.say(A, f"/forget {short_id(theirs)}")
    assert "No memory" in (answer.text or "")
    assert await texts(bot, B) == ["B's locker code is 1234"]


async def test_edit_replaces_text(bot: BotUnderTest) -> None:
    [saved] = await bot.say(A, "buy cow milk")
    [answer] = await bot.say(A, f"/edit {short_id(saved)} buy oat milk and almonds")
    assert answer.text == f"✏️ Updated <code>{short_id(saved)}</code>."
    assert await texts(bot, A) == ["buy oat milk and almonds"]
    [found] = await bot.say(A, "/recall almonds")
    assert "buy oat milk and almonds" in (found.plain or "")
    assert "cow" not in (found.plain or "")


async def test_edit_unknown_id_and_usage(bot: BotUnderTest) -> None:
    [missing] = await bot.say(A, "/edit deadbeef new text")
    assert "No memory deadbeef" in (missing.text or "")
    [usage] = await bot.say(A, "/edit deadbeef")
    assert "Usage" in (usage.text or "")


# ---- /forget_all -------------------------------------------------------------------------------
async def test_forget_all_cancel_keeps_everything(bot: BotUnderTest) -> None:
    await seed(bot, A, ["one thing", "another thing"])
    [prompt] = await bot.say(A, "/forget_all")
    assert "<b>2</b>" in (prompt.text or "")
    assert buttons(prompt) == ["🗑 Yes, forget everything", "Cancel"]
    answer = await bot.press(A, prompt, 1)
    assert answer["text"] == "Cancelled"
    assert "nothing was forgotten" in (prompt.text or "")
    assert len(await texts(bot, A)) == 2


async def test_forget_all_yes_empties_only_that_user(bot: BotUnderTest) -> None:
    await seed(bot, A, ["one thing", "another thing", "a third thing"])
    await seed(bot, B, ["B keeps this"])
    [prompt] = await bot.say(A, "/forget_all")
    answer = await bot.press(A, prompt, 0)
    assert answer["text"] == "Done"
    assert prompt.text == "🗑 Forgot all 3 memories."
    assert await texts(bot, A) == []
    mine = await bot.engine.index.check(space_id=A)
    assert (mine.sql_count, mine.vector_count) == (0, 0)
    theirs = await bot.engine.index.check(space_id=B)
    assert (theirs.sql_count, theirs.vector_count) == (1, 1)
    assert await texts(bot, B) == ["B keeps this"]
    [found] = await bot.say(B, "/recall keeps")
    assert "B keeps this" in (found.plain or "")


async def test_forget_all_confirmed_through_a_store_blip_still_forgets(bot: BotUnderTest) -> None:
    """The confirmation is cleared in the unit of work that forgets: the blip rolls both back
    and the retry finds the confirmation (it answered "expired" and forgot nothing: issue 30)."""
    await seed(bot, A, ["one thing", "another thing"])
    [prompt] = await bot.say(A, "/forget_all")
    bot.engine.stores.faults.fail(Step.VECTOR_WRITE, times=1)
    answer = await bot.press(A, prompt, 0)
    assert answer["text"] == "Done"
    assert prompt.text == "🗑 Forgot all 2 memories."
    assert await texts(bot, A) == []
    check = await bot.engine.index.check(space_id=A)
    assert (check.sql_count, check.vector_count) == (0, 0)


async def test_forget_all_with_nothing_saved(bot: BotUnderTest) -> None:
    [answer] = await bot.say(A, "/forget_all")
    assert answer.text == "You have no memories to forget."
    assert answer.reply_markup is None


# ---- /export -----------------------------------------------------------------------------------
async def test_export_sends_json(bot: BotUnderTest) -> None:
    items = ["first memory", "second memory", "third memory"]
    await seed(bot, A, items)
    await seed(bot, B, ["not A's"])
    [doc] = await bot.say(A, "/export")
    assert doc.document is not None
    assert (doc.file_name or "").endswith(".json")
    assert doc.caption == "3 memories"
    exported = json.loads(doc.document)
    assert exported["user_id"] == A
    assert exported["count"] == 3
    assert sorted(m["text"] for m in exported["memories"]) == sorted(items)
    ids = {m["id"] for m in exported["memories"]}
    assert ids == {str(m.id) for m in (await bot.engine.reads.page(space_id=A)).items}


async def test_forget_by_full_id_from_export(bot: BotUnderTest) -> None:
    await bot.say(A, "forget me by my full id")
    [doc] = await bot.say(A, "/export")
    assert doc.document is not None
    full = json.loads(doc.document)["memories"][0]["id"]
    [answer] = await bot.say(A, f"/forget {full}")
    assert "Forgot" in (answer.text or "")
    assert await texts(bot, A) == []


# ---- sizes, escaping, isolation ----------------------------------------------------------------
async def test_long_memories_stay_valid_and_short(bot: BotUnderTest) -> None:
    nasty = ("<b>&amp; & x < y > z</b> " * 200)[:3999]
    assert len(nasty.strip()) == 3999
    [saved] = await bot.say(A, nasty)
    assert "Saved" in (saved.text or "")
    await bot.engine.writes.save_many(space_id=A, texts=[f"{i} {nasty}"[:3999] for i in range(10)])
    before = len(bot.emulator.sent(A))
    bot.emulator.user_message(A, "/list")
    sent = await bot.emulator.wait_for(
        lambda msgs: len(msgs) > before and msgs[-1].reply_markup is not None, chat_id=A
    )
    parts = sent[before:]
    assert buttons(parts[-1]) == ["Older ▶"]
    [found] = await bot.say(A, "/recall " + nasty)
    for message in [*parts, found]:
        assert message.plain is not None
        assert 0 < len(message.plain) < 4096
    assert "&amp; & x < y > z" in (found.plain or "")
    assert "&amp; & x < y > z" in "".join(p.plain or "" for p in parts)
    assert len(await texts(bot, A)) == 11


async def test_special_characters_round_trip(bot: BotUnderTest) -> None:
    special = "<b>bold</b> & <i>x</i> *md* _u_ [l](http://x) 🧠🎉 中文"
    [saved] = await bot.say(A, special)
    assert "Saved" in (saved.text or "")
    assert await texts(bot, A) == [special]
    [listed] = await bot.say(A, "/list")
    assert html.escape(special, quote=False) in (listed.text or "")
    assert special in (listed.plain or "")
    assert {e["type"] for e in listed.entities} == {"code"}
    [found] = await bot.say(A, "/recall bold")
    assert special in (found.plain or "")
    [doc] = await bot.say(A, "/export")
    assert doc.document is not None
    assert json.loads(doc.document)["memories"][0]["text"] == special


async def test_users_never_see_each_other(bot: BotUnderTest) -> None:
    await bot.say(A, "my bank pin is 4321")
    await bot.say(B, "my bank branch is downtown on main street")
    [found] = await bot.say(A, "/recall bank")
    assert "4321" in (found.plain or "")
    assert "downtown" not in (found.plain or "")
    [listed] = await bot.say(A, "/list")
    assert "of 1" in (listed.plain or "")
    assert "downtown" not in (listed.plain or "")
    [found] = await bot.say(B, "/recall what is my pin")
    assert "4321" not in (found.plain or "")
    [listed] = await bot.say(B, "/list")
    assert "4321" not in (listed.plain or "")
