"""Callback query ids open for an answer, and the bot's command lists per scope and language."""

from __future__ import annotations

from typing import Any, NamedTuple

from botapi_emulator.groups import ChatRegistry


class CallbackQueries:
    """Callback query ids, each open for one answerCallbackQuery."""

    def __init__(self) -> None:
        self._open: set[str] = set()
        self._issued = 0

    def new_id(self) -> str:
        """A fresh callback query id, open for one answer."""
        self._issued += 1
        query_id = str(4_000_000_000_000 + self._issued)
        self._open.add(query_id)
        return query_id

    def add(self, query_id: str) -> None:
        """Accept one answer to a callback query with this id (for hand-made updates)."""
        self._open.add(query_id)

    def close(self, query_id: str) -> bool:
        """Take the one answer a callback query gets; False if unknown or already answered."""
        if query_id not in self._open:
            return False
        self._open.discard(query_id)
        return True


class Scope(NamedTuple):
    """A BotCommandScope as read: its type, chat (chat scopes) and user (chat_member)."""

    type: str = "default"
    chat_id: int | None = None
    user_id: int | None = None

    def as_json(self) -> dict[str, Any]:
        """The BotCommandScope object this scope was read from (ids as numbers)."""
        found = {"type": self.type, "chat_id": self.chat_id, "user_id": self.user_id}
        return {key: value for key, value in found.items() if value is not None}


class CommandSets:
    """setMyCommands lists by (scope, language_code); `latest` is the list last set (any scope).

    `menu` reads one exact scope (as getMyCommands does, but None when nothing is set);
    `shown` resolves what a user sees in a chat the way Telegram clients do.
    """

    def __init__(self, chats: ChatRegistry) -> None:
        self.latest: list[dict[str, Any]] = []
        self._chats = chats
        self._sets: dict[tuple[Scope, str], list[dict[str, Any]]] = {}

    def set(self, scope: Scope, language_code: str, commands: list[dict[str, Any]]) -> None:
        """setMyCommands for a scope and language ("" = every language)."""
        self._sets[scope, language_code] = commands
        self.latest = commands

    def get(self, scope: Scope, language_code: str) -> list[dict[str, Any]]:
        """getMyCommands: the list of exactly this scope and language ([] if none)."""
        return self._sets.get((scope, language_code), [])

    def delete(self, scope: Scope, language_code: str) -> None:
        """deleteMyCommands: drop exactly this scope and language's list."""
        if self._sets.pop((scope, language_code), None) is self.latest:
            self.latest = []

    def menu(
        self,
        kind: str = "default",
        *,
        chat_id: int | None = None,
        user_id: int | None = None,
        language_code: str = "",
    ) -> list[str] | None:
        """The command names set for exactly this scope and language; None if none is set."""
        commands = self._sets.get((Scope(kind, chat_id, user_id), language_code))
        return None if commands is None else [str(c["command"]) for c in commands]

    def entries(self) -> list[tuple[Scope, str, list[dict[str, Any]]]]:
        """Every (scope, language_code, commands) set, in the order first set."""
        return [(scope, language, commands) for (scope, language), commands in self._sets.items()]

    def shown(self, chat_id: int, user_id: int, *, language_code: str = "") -> list[str]:
        """The command names `user_id` sees in `chat_id` (a private chat: their own id), by the
        Bot API's order: the narrowest scope set wins, its language before the default one."""
        group = self._chats.group(chat_id)
        if group is None:
            order = [Scope("chat", chat_id), Scope("all_private_chats"), Scope("default")]
        else:
            admin = group.status(user_id) in ("creator", "administrator")
            order = [Scope("chat_member", chat_id, user_id)]
            order += [Scope("chat_administrators", chat_id)] if admin else []
            order += [Scope("chat", chat_id)]
            order += [Scope("all_chat_administrators")] if admin else []
            order += [Scope("all_group_chats"), Scope("default")]
        languages = [language_code, ""] if language_code else [""]
        for scope in order:
            for language in languages:
                commands = self._sets.get((scope, language))
                if commands is not None:
                    return [str(c["command"]) for c in commands]
        return []
