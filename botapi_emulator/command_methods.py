"""setMyCommands, getMyCommands and deleteMyCommands: one command list per scope and language.

The scope is read as the Bot API server reads a BotCommandScope (a bad one answers 400
"can't parse BotCommandScope: …"), its chat checked as Telegram checks it: a chat the bot can
see, a private chat only with the `chat` scope, never a channel.
"""

from __future__ import annotations

import re
from typing import Any

from botapi_emulator.commands import Scope
from botapi_emulator.errors import ApiError, bad_request
from botapi_emulator.params import Handler
from botapi_emulator.state import EmulatorState

_COMMAND = re.compile(r"[a-z0-9_]{1,32}")
_LANGUAGE = re.compile(r"(?:[a-z]{2})?")
_PLAIN = ("default", "all_private_chats", "all_group_chats", "all_chat_administrators")
_IN_CHAT = ("chat", "chat_administrators", "chat_member")


def _unreadable(why: str) -> ApiError:
    """The 400 of a scope the server cannot read."""
    return bad_request(f"can't parse BotCommandScope: {why}")


def _string_field(scope: dict[str, Any], name: str) -> str:
    """A required String field; a number is taken as its decimal text (as the server does)."""
    if name not in scope:
        raise _unreadable(f'Can\'t find field "{name}"')
    value = scope[name]
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _unreadable(f'Field "{name}" must be of type String')
    return value if isinstance(value, str) else str(value)


def _user_id_field(scope: dict[str, Any]) -> int:
    """The required, positive user_id of a chat_member scope."""
    if "user_id" not in scope:
        raise _unreadable('Can\'t find field "user_id"')
    value = scope["user_id"]
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _unreadable('Field "user_id" must be a Number')
    if not re.fullmatch(r"-?\d+", str(value)):
        raise _unreadable('Field "user_id" must be a valid Number')
    if int(value) <= 0:
        raise _unreadable("Invalid user_id specified")
    return int(value)


def parse_scope(raw: Any) -> tuple[str, str | None, int | None]:
    """(type, chat_id as sent, user_id) of a BotCommandScope; absent means `default`."""
    if raw is None or raw == "":
        return "default", None, None
    if isinstance(raw, str):  # params.py leaves a string that is not JSON as it came
        raise bad_request("can't parse BotCommandScope JSON object")
    if not isinstance(raw, dict):
        raise _unreadable("BotCommandScope must be an Object")
    kind = _string_field(raw, "type")
    if kind in _PLAIN:
        return kind, None, None
    if kind not in _IN_CHAT:
        raise _unreadable("Unsupported type specified")
    chat = _string_field(raw, "chat_id")
    if not chat:
        raise _unreadable("Empty chat_id specified")
    return kind, chat, _user_id_field(raw) if kind == "chat_member" else None


class CommandMethods:
    """The three command-menu methods over an EmulatorState's CommandSets."""

    def __init__(self, state: EmulatorState) -> None:
        self._state = state

    def handlers(self) -> dict[str, Handler]:
        """The methods by lower-cased name."""
        return {
            "setmycommands": self.set_commands,
            "getmycommands": self.get_commands,
            "deletemycommands": self.delete_commands,
        }

    async def set_commands(self, params: dict[str, Any]) -> bool:
        """setMyCommands."""
        scope, language = self._scope(params), self._language(params)
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise bad_request("can't parse commands JSON object")
        for item in commands:
            if not isinstance(item, dict) or not _COMMAND.fullmatch(str(item.get("command"))):
                raise bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(str(item.get("description") or "")) <= 256:
                raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
        if len(commands) > 100:
            raise bad_request("too many commands specified")
        self._state.command_sets.set(scope, language, commands)
        return True

    async def get_commands(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        """getMyCommands: exactly this scope and language's list."""
        scope, language = self._scope(params), self._language(params)
        return self._state.command_sets.get(scope, language)

    async def delete_commands(self, params: dict[str, Any]) -> bool:
        """deleteMyCommands: lower scopes apply there again."""
        scope, language = self._scope(params), self._language(params)
        self._state.command_sets.delete(scope, language)
        return True

    def _language(self, params: dict[str, Any]) -> str:
        language = params.get("language_code") or ""
        if not isinstance(language, str) or not _LANGUAGE.fullmatch(language):
            raise bad_request("invalid language code specified")
        return language

    def _scope(self, params: dict[str, Any]) -> Scope:
        kind, chat, user_id = parse_scope(params.get("scope"))
        if chat is None:
            return Scope(kind)
        chat_id = self._chat_id(chat)
        group = self._state.chats.group(chat_id)
        if group is None and kind != "chat":
            raise bad_request("can't use specified scope in private chats")
        if group is not None:
            if (error := group.bot_access_error(write=False)) is not None:
                raise error
            if group.kind == "channel":
                raise bad_request("can't change commands in channel chats")
        return Scope(kind, chat_id, user_id)

    def _chat_id(self, chat: str) -> int:
        """A chat the bot can see, by id (no emulated group has a public @username)."""
        if re.fullmatch(r"-?\d+", chat) and self._state.has_chat(int(chat)):
            return int(chat)
        raise bad_request("chat not found")
