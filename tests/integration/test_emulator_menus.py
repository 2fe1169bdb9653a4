"""The emulator's command menus over HTTP: one list per scope and language, scopes validated
as the Bot API server validates them, and what a user sees resolved in Telegram's order."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from telegram import (
    Bot,
    BotCommandScopeAllChatAdministrators,
    BotCommandScopeAllGroupChats,
    BotCommandScopeAllPrivateChats,
    BotCommandScopeChat,
    BotCommandScopeChatAdministrators,
    BotCommandScopeChatMember,
)
from telegram.error import BadRequest

from botapi_emulator import BotApiEmulator

USER, MEMBER, ADMIN = 501, 502, 503
GROUP = -1_005_000_000_001
CHANNEL = -1_005_000_000_002
ONE = [("one", "The first")]
TWO = [("two", "The second")]


@pytest.fixture
async def emu() -> AsyncIterator[BotApiEmulator]:
    emulator = BotApiEmulator()
    await emulator.start()
    emulator.user_message(USER, "hi")  # the bot can see USER's private chat now
    emulator.create_group(GROUP, title="G", admins=[ADMIN], members=[MEMBER])
    emulator.create_channel(CHANNEL, title="C")
    yield emulator
    await emulator.stop()


@pytest.fixture
async def bot(emu: BotApiEmulator) -> AsyncIterator[Bot]:
    async with Bot(emu.token, base_url=emu.base_url) as client:
        yield client


async def call(emu: BotApiEmulator, method: str, body: dict[str, Any]) -> tuple[int, Any]:
    """A raw JSON request, for scopes no client library would build."""
    url = f"{emu.base_url}{emu.token}/{method}"
    async with aiohttp.ClientSession() as session, session.post(url, json=body) as answer:
        payload = await answer.json()
        return answer.status, payload.get("result", payload.get("description"))


async def test_each_scope_and_language_keeps_its_own_list(emu: BotApiEmulator, bot: Bot) -> None:
    assert await bot.set_my_commands(ONE)
    assert await bot.set_my_commands(TWO, scope=BotCommandScopeChat(USER))
    assert await bot.set_my_commands(TWO, language_code="de")
    assert [c.command for c in await bot.get_my_commands()] == ["one"]
    assert [c.command for c in await bot.get_my_commands(language_code="de")] == ["two"]
    assert await bot.get_my_commands(scope=BotCommandScopeAllPrivateChats()) == ()
    assert emu.menus.menu("chat", chat_id=USER) == ["two"]
    assert emu.menus.menu("all_private_chats") is None
    assert emu.menus.shown(USER, USER) == ["two"]
    assert emu.menus.shown(USER + 1, USER + 1) == ["one"], "no chat scope: the default"
    assert emu.menus.shown(USER + 1, USER + 1, language_code="de") == ["two"]

    assert await bot.delete_my_commands(scope=BotCommandScopeChat(USER))
    assert emu.menus.menu("chat", chat_id=USER) is None
    assert emu.menus.shown(USER, USER) == ["one"]
    assert emu.menus.menu("default") == ["one"], "deleting one scope leaves the others"

    url = f"http://{emu.host}:{emu.port}/control/commands"
    async with aiohttp.ClientSession() as session, session.get(url) as answer:
        rows = await answer.json()
    assert {
        "scope": {"type": "default"},
        "language_code": "de",
        "commands": [{"command": "two", "description": "The second"}],
    } in rows


async def test_group_scopes_resolve_by_membership_and_admin_status(
    emu: BotApiEmulator, bot: Bot
) -> None:
    await bot.set_my_commands(ONE, scope=BotCommandScopeAllGroupChats())
    await bot.set_my_commands(TWO, scope=BotCommandScopeAllChatAdministrators())
    assert emu.menus.shown(GROUP, MEMBER) == ["one"]
    assert emu.menus.shown(GROUP, ADMIN) == ["two"]
    await bot.set_my_commands([("three", "3")], scope=BotCommandScopeChatAdministrators(GROUP))
    await bot.set_my_commands([("four", "4")], scope=BotCommandScopeChatMember(GROUP, MEMBER))
    assert emu.menus.shown(GROUP, ADMIN) == ["three"]
    assert emu.menus.shown(GROUP, MEMBER) == ["four"]
    assert emu.menus.shown(USER, USER) == [], "group scopes never apply in a private chat"


@pytest.mark.parametrize(
    ("scope", "description"),
    [
        ("not json", "can't parse BotCommandScope JSON object"),
        (7, "can't parse BotCommandScope: BotCommandScope must be an Object"),
        ({}, "can't parse BotCommandScope: Can't find field \"type\""),
        ({"type": ["chat"]}, 'can\'t parse BotCommandScope: Field "type" must be of type String'),
        ({"type": "everyone"}, "can't parse BotCommandScope: Unsupported type specified"),
        ({"type": "chat"}, "can't parse BotCommandScope: Can't find field \"chat_id\""),
        ({"type": "chat", "chat_id": ""}, "can't parse BotCommandScope: Empty chat_id specified"),
        (
            {"type": "chat_member", "chat_id": GROUP},
            "can't parse BotCommandScope: Can't find field \"user_id\"",
        ),
        (
            {"type": "chat_member", "chat_id": GROUP, "user_id": "x"},
            'can\'t parse BotCommandScope: Field "user_id" must be a valid Number',
        ),
        (
            {"type": "chat_member", "chat_id": GROUP, "user_id": 0},
            "can't parse BotCommandScope: Invalid user_id specified",
        ),
        ({"type": "chat", "chat_id": 999_999}, "chat not found"),
        ({"type": "chat", "chat_id": "@nobody"}, "chat not found"),
        (
            {"type": "chat_administrators", "chat_id": USER},
            "can't use specified scope in private chats",
        ),
        ({"type": "chat", "chat_id": CHANNEL}, "can't change commands in channel chats"),
    ],
)
async def test_a_bad_scope_is_a_bad_request(
    emu: BotApiEmulator, scope: Any, description: str
) -> None:
    for method, body in [
        ("setMyCommands", {"commands": [{"command": "a", "description": "b"}]}),
        ("getMyCommands", {}),
        ("deleteMyCommands", {}),
    ]:
        status, answer = await call(emu, method, body | {"scope": scope})
        assert (status, answer) == (400, f"Bad Request: {description}"), method
    assert emu.menus.entries() == []


async def test_language_codes_and_commands_are_checked(emu: BotApiEmulator, bot: Bot) -> None:
    with pytest.raises(BadRequest, match=r"(?i)invalid language code specified"):
        await bot.set_my_commands(ONE, language_code="english")
    with pytest.raises(BadRequest, match=r"(?i)BOT_COMMAND_INVALID"):
        await bot.set_my_commands([("Bad-One", "x")], scope=BotCommandScopeChat(USER))
    with pytest.raises(BadRequest, match=r"(?i)too many commands"):
        await bot.set_my_commands([(f"c{i}", "x") for i in range(101)])
    status, answer = await call(
        emu, "setMyCommands", {"commands": [], "scope": {"type": "chat", "chat_id": str(USER)}}
    )
    assert (status, answer) == (200, True), "a chat id may come as a string"
    assert emu.menus.menu("chat", chat_id=USER) == []
    assert emu.menus.entries()[0][0].as_json() == {"type": "chat", "chat_id": USER}
