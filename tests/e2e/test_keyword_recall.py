"""/recall finds words the English model cannot read, and rare codes, first (both databases)."""

from __future__ import annotations

from tests.e2e.conftest import BotUnderTest

A = 101
NOTES = (
    "Паспорт лежит в синей папке",
    "Locker code 4471-QX",
    "Pool locker code is 1193-MB",
    "the passport photo appointment is on friday",
    "buy oat milk and bread",
)


async def _save_by_chat(bot: BotUnderTest) -> None:
    await bot.say(A, "/start")
    for note in NOTES:
        replies = await bot.say(A, note)  # plain text in a private chat saves it
        assert any("Saved" in (reply.plain or "") for reply in replies), replies
    page = await bot.engine.reads.page(space_id=A)
    assert sorted(m.text for m in page.items) == sorted(NOTES)


async def test_recall_finds_a_cyrillic_note_by_a_lower_case_word(bot: BotUnderTest) -> None:
    await _save_by_chat(bot)
    [found] = await bot.say(A, "/recall паспорт")
    lines = (found.plain or "").splitlines()
    assert lines[1].startswith("1. Паспорт лежит в синей папке"), lines


async def test_recall_puts_the_note_with_a_rare_code_first(bot: BotUnderTest) -> None:
    await _save_by_chat(bot)
    [found] = await bot.say(A, "/recall 4471-QX")
    lines = (found.plain or "").splitlines()
    assert lines[1].startswith("1. Locker code 4471-QX"), lines
