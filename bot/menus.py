"""Command menus per role (Bot API scopes): users see their commands, admins also theirs.

- default scope: the user commands (private chats, and any chat no narrower scope covers);
- all_group_chats: what a group member may use there; all_chat_administrators: that plus what
  only a group admin may (/forget_all, /export, /import);
- chat scope of each admin's private chat: the user commands plus the admin commands. Set at
  start for every admin in SQL, set or deleted when /role changes a role, deleted at start for
  whoever the ADMIN_USER_IDS sync demoted, and reconciled when an admin (or an ex-admin this
  process showed the menu to) writes in private (`AdminMenus.follow`).

A Telegram error never fails the caller: it is logged as a warning and the menu stays as it was.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from telegram import (
    Bot,
    BotCommand,
    BotCommandScope,
    BotCommandScopeAllChatAdministrators,
    BotCommandScopeAllGroupChats,
    BotCommandScopeChat,
    BotCommandScopeDefault,
)
from telegram.error import TelegramError

from bot.handlers.basics import COMMANDS
from engine.admin import Role

log = logging.getLogger("memorybot.menus")
KEY = "menus"  # where the Application keeps its AdminMenus: `app.bot_data[KEY]`

ADMIN_COMMANDS = [
    ("stats", "Users, memories, index drift, dead letters"),
    ("broadcast", "Message every user: /broadcast text"),
    ("broadcast_status", "Progress of the latest broadcasts"),
    ("broadcast_cancel", "Stop the running broadcast"),
    ("role", "Change a role: /role user admin|user|viewer"),
    ("audit", "The latest audit entries: /audit [n]"),
    ("dlq", "Updates that kept failing"),
]
GROUP_ADMIN_ONLY = ("forget_all", "export", "import")  # README: "group admins only"
GROUP_MEMBER_COMMANDS = [(name, text) for name, text in COMMANDS if name not in GROUP_ADMIN_ONLY]
GROUP_ADMIN_COMMANDS = COMMANDS  # a group admin may use every user command in the group

Commands = list[tuple[str, str]]


def _bot_commands(commands: Commands) -> list[BotCommand]:
    return [BotCommand(name, text) for name, text in commands]


async def _set(bot: Bot, scope: BotCommandScope, commands: Commands) -> bool:
    try:
        return await bot.set_my_commands(_bot_commands(commands), scope=scope)
    except TelegramError as error:
        log.warning("setMyCommands scope=%s failed: %s", _named(scope), error)
        return False


async def _delete(bot: Bot, scope: BotCommandScope) -> bool:
    try:
        return await bot.delete_my_commands(scope=scope)
    except TelegramError as error:
        log.warning("deleteMyCommands scope=%s failed: %s", _named(scope), error)
        return False


def _named(scope: BotCommandScope) -> str:
    chat_id = getattr(scope, "chat_id", None)
    return scope.type if chat_id is None else f"{scope.type}:{chat_id}"


class AdminMenus:
    """The admin menu of each admin's private chat, and which ones this process has shown."""

    def __init__(self) -> None:
        self.shown: set[int] = set()  # private chats that may have the admin menu

    async def publish(self, bot: Bot, *, admins: Iterable[int], demoted: Iterable[int]) -> None:
        """At start: the default and group menus, each admin's menu, and no menu for `demoted`."""
        await _set(bot, BotCommandScopeDefault(), COMMANDS)
        await _set(bot, BotCommandScopeAllGroupChats(), GROUP_MEMBER_COMMANDS)
        await _set(bot, BotCommandScopeAllChatAdministrators(), GROUP_ADMIN_COMMANDS)
        for user_id in demoted:
            await self.hide(bot, user_id)
        for user_id in admins:
            await self.show(bot, user_id)

    async def show(self, bot: Bot, user_id: int) -> bool:
        """Give `user_id`'s private chat the admin menu; False if Telegram refused."""
        if await _set(bot, BotCommandScopeChat(user_id), COMMANDS + ADMIN_COMMANDS):
            self.shown.add(user_id)
            return True
        return False

    async def hide(self, bot: Bot, user_id: int) -> bool:
        """Drop `user_id`'s admin menu (the default applies again); False if Telegram refused
        (then `follow` tries again at their next private message)."""
        if await _delete(bot, BotCommandScopeChat(user_id)):
            self.shown.discard(user_id)
            return True
        self.shown.add(user_id)
        return False

    async def apply(self, bot: Bot, user_id: int, role: str) -> bool:
        """The menu for a role just given with /role: the admin menu or none."""
        if role == Role.ADMIN:
            return await self.show(bot, user_id)
        return await self.hide(bot, user_id)

    async def follow(self, bot: Bot, user_id: int, role: str) -> None:
        """On a private message: show the admin menu to an admin this process has not shown it
        to (a first contact, or promoted elsewhere); hide it from one no longer an admin. No
        Telegram call when nothing changed."""
        admin = role == Role.ADMIN
        if admin and user_id not in self.shown:
            await self.show(bot, user_id)
        elif not admin and user_id in self.shown:
            await self.hide(bot, user_id)


def menus_of(bot_data: dict[Any, Any]) -> AdminMenus:
    """The Application's AdminMenus (made on first use)."""
    menus = bot_data.setdefault(KEY, AdminMenus())
    assert isinstance(menus, AdminMenus)
    return menus
