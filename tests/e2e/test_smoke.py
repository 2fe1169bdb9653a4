"""The shortest path a user takes: start, save, recall."""

from __future__ import annotations

from tests.e2e.conftest import BotUnderTest


async def test_start_save_recall(bot: BotUnderTest) -> None:
    [welcome] = await bot.say(1, "/start")
    assert "remember" in (welcome.text or "")
    [saved] = await bot.say(1, "my passport is in the blue drawer")
    assert "Saved" in (saved.text or "")
    [found] = await bot.say(1, "/recall where did I leave my passport")
    assert "blue drawer" in (found.text or "")
    assert bot.emulator.commands, "setMyCommands was called at start"
