"""Callback query ids open for an answer, and the bot's command lists per scope."""

from __future__ import annotations

from typing import Any


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


class CommandSets:
    """setMyCommands lists by scope key; `latest` is the list last set (any scope)."""

    def __init__(self) -> None:
        self.latest: list[dict[str, Any]] = []
        self._sets: dict[str, list[dict[str, Any]]] = {}

    def set(self, scope: str, commands: list[dict[str, Any]]) -> None:
        """setMyCommands for a scope key."""
        self._sets[scope] = commands
        self.latest = commands

    def get(self, scope: str) -> list[dict[str, Any]]:
        """getMyCommands for a scope key."""
        return self._sets.get(scope, [])

    def delete(self, scope: str) -> None:
        """deleteMyCommands for a scope key."""
        if self._sets.pop(scope, None) is self.latest:
            self.latest = []
