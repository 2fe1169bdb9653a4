"""Command menus per role, end to end on both databases: users see their commands, admins also
the admin commands (a chat scope for each admin's private chat), kept current as roles change."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest

from bot.handlers.basics import COMMANDS
from bot.menus import ADMIN_COMMANDS, GROUP_ADMIN_ONLY
from botapi_emulator import BotApiEmulator
from botapi_emulator.commands import Scope
from engine.settings import Settings
from tests.e2e.conftest import BotUnderTest

ADMIN, USER, OTHER = 9_101, 9_102, 9_103
GROUP, GROUP_ADMIN = -1_009_100_000_001, 9_104
USER_NAMES = [name for name, _ in COMMANDS]
ADMIN_NAMES = [name for name, _ in ADMIN_COMMANDS]
GROUP_NAMES = [name for name in USER_NAMES if name not in GROUP_ADMIN_ONLY]


@pytest.fixture
async def bot(settings: Settings, emulator: BotApiEmulator) -> AsyncIterator[BotUnderTest]:
    """The running bot with ADMIN and OTHER in ADMIN_USER_IDS (SQLite and PostgreSQL)."""
    configured = settings.model_copy(update={"admin_user_ids": (ADMIN, OTHER)})
    under_test = BotUnderTest(configured, emulator)
    await under_test.start()
    yield under_test
    await under_test.stop()


async def role(bot: BotUnderTest, target: int, name: str) -> None:
    """ADMIN runs /role; returns once it replied and the update finished (menu call included)."""
    [done] = await bot.say(ADMIN, f"/role {target} {name}")
    assert f"is now {name}" in (done.text or "")
    await bot.settled()


def admin_menu(emulator: BotApiEmulator, user_id: int) -> list[str] | None:
    """The command names set for `user_id`'s private chat (None: no chat scope)."""
    return emulator.menus.menu("chat", chat_id=user_id)


async def test_start_sets_default_group_and_admin_menus(bot: BotUnderTest) -> None:
    menus = bot.emulator.menus
    assert menus.menu("default") == USER_NAMES
    assert not set(ADMIN_NAMES) & set(menus.shown(USER, USER)), "no admin command for users"
    assert menus.menu("all_group_chats") == GROUP_NAMES
    assert menus.menu("all_chat_administrators") == USER_NAMES
    assert admin_menu(bot.emulator, ADMIN) is None, "never talked to the bot: no chat yet"

    await bot.say(ADMIN, "/start")  # first contact: registered as admin, menu shown
    await bot.say(USER, "/start")
    assert admin_menu(bot.emulator, ADMIN) == USER_NAMES + ADMIN_NAMES
    assert menus.shown(ADMIN, ADMIN) == USER_NAMES + ADMIN_NAMES
    assert menus.shown(USER, USER) == USER_NAMES
    assert admin_menu(bot.emulator, USER) is None

    menus.delete(Scope("chat", ADMIN), "")  # forget what first contact set...
    assert admin_menu(bot.emulator, ADMIN) is None
    await bot.restart()  # ...the start sets it again for every admin in SQL
    assert admin_menu(bot.emulator, ADMIN) == USER_NAMES + ADMIN_NAMES
    assert admin_menu(bot.emulator, USER) is None
    assert menus.menu("default") == USER_NAMES


async def test_group_members_and_group_admins_see_their_commands(bot: BotUnderTest) -> None:
    bot.emulator.create_group(GROUP, title="Team", admins=[GROUP_ADMIN], members=[USER, ADMIN])
    menus = bot.emulator.menus
    assert menus.shown(GROUP, USER) == GROUP_NAMES
    assert menus.shown(GROUP, GROUP_ADMIN) == USER_NAMES
    await bot.say(ADMIN, "/start")
    assert menus.shown(GROUP, ADMIN) == GROUP_NAMES, "bot admin commands are private-chat only"


async def test_role_promotion_sets_and_demotion_deletes_the_menu(bot: BotUnderTest) -> None:
    await bot.say(ADMIN, "/start")
    await bot.say(USER, "/start")
    await role(bot, USER, "admin")
    assert admin_menu(bot.emulator, USER) == USER_NAMES + ADMIN_NAMES
    assert bot.emulator.menus.shown(USER, USER) == USER_NAMES + ADMIN_NAMES

    await role(bot, USER, "viewer")
    assert admin_menu(bot.emulator, USER) is None
    assert bot.emulator.menus.shown(USER, USER) == USER_NAMES

    await role(bot, ADMIN, "user")  # an admin may demote themself
    assert admin_menu(bot.emulator, ADMIN) is None
    assert admin_menu(bot.emulator, OTHER) is None, "nobody else's menu was touched"


async def test_admin_removed_from_settings_loses_the_menu_at_restart(bot: BotUnderTest) -> None:
    await bot.say(ADMIN, "/start")
    await bot.say(OTHER, "/start")
    assert admin_menu(bot.emulator, OTHER) == USER_NAMES + ADMIN_NAMES
    bot.settings = bot.settings.model_copy(update={"admin_user_ids": (ADMIN,)})
    await bot.restart()
    assert (await bot.engine.admin.role_of(OTHER)).value == "user"
    assert admin_menu(bot.emulator, OTHER) is None
    assert admin_menu(bot.emulator, ADMIN) == USER_NAMES + ADMIN_NAMES
    [refused] = await bot.say(OTHER, "/stats")
    assert refused.text == "Sorry, that command is not available."


async def test_failing_menu_calls_break_neither_start_nor_role(
    bot: BotUnderTest, caplog: pytest.LogCaptureFixture
) -> None:
    await bot.say(ADMIN, "/start")
    await bot.say(USER, "/start")
    menus = bot.emulator.menus
    menus.delete(Scope("default"), "")
    menus.delete(Scope("chat", ADMIN), "")
    bot.emulator.fail("setMyCommands", status=500, times=50)
    with caplog.at_level(logging.WARNING, logger="memorybot.menus"):
        await bot.restart()  # every setMyCommands fails: the bot starts all the same
    assert "setMyCommands scope=default failed" in caplog.text
    assert "setMyCommands scope=chat:9101 failed" in caplog.text
    assert menus.menu("default") is None
    assert admin_menu(bot.emulator, ADMIN) is None
    [welcome] = await bot.say(USER, "/start")
    assert "remember" in (welcome.text or "")
    while bot.emulator.state.faults.take_fault("setMyCommands") is not None:
        pass  # the faults the start did not use

    await bot.say(ADMIN, "/help")  # the admin's next private message brings their menu
    assert admin_menu(bot.emulator, ADMIN) == USER_NAMES + ADMIN_NAMES
    bot.emulator.fail("setMyCommands", status=502, times=1)  # /role's own call fails
    await role(bot, USER, "admin")
    assert admin_menu(bot.emulator, USER) is None
    await bot.say(USER, "/help")  # the new admin's next private message brings the menu
    await bot.settled()
    assert admin_menu(bot.emulator, USER) == USER_NAMES + ADMIN_NAMES

    bot.emulator.fail("deleteMyCommands", status=502, times=1)
    await role(bot, USER, "user")
    assert admin_menu(bot.emulator, USER) == USER_NAMES + ADMIN_NAMES, "the delete failed"
    await bot.say(USER, "/help")  # tried again at their next private message
    await bot.settled()
    assert admin_menu(bot.emulator, USER) is None
