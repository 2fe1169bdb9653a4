"""The update queue getUpdates serves: ids, confirmation by offset, long-poll wake-ups."""

from __future__ import annotations

from typing import Any

from botapi_emulator.signals import Signal


class UpdateQueue:
    """Updates kept until the bot confirms them with a higher offset, as Telegram does."""

    def __init__(self) -> None:
        self.confirmed_offset = 0
        self.signal = Signal()
        self.closed = False  # set while the server stops: long polls return at once
        self._updates: list[dict[str, Any]] = []
        self._next_update_id = 1

    def push(self, update: dict[str, Any]) -> int:
        """Queue an update (update_id assigned if missing) and wake long polls; its update_id."""
        if not isinstance(update.get("update_id"), int):
            update["update_id"] = self._next_update_id
        self._next_update_id = max(self._next_update_id, int(update["update_id"])) + 1
        self._updates.append(update)
        self.signal.fire()
        return int(update["update_id"])

    def confirm(self, offset: int) -> None:
        """getUpdates' offset: forget updates below it (a negative one keeps the last -offset)."""
        if offset < 0:
            self._updates = self._updates[offset:]
            return
        self._updates = [u for u in self._updates if u["update_id"] >= offset]
        self.confirmed_offset = max(self.confirmed_offset, offset)

    def batch(self, offset: int | None, limit: int) -> list[dict[str, Any]]:
        """Up to `limit` queued updates from `offset` on, by update_id."""
        return sorted(
            (u for u in self._updates if offset is None or u["update_id"] >= offset),
            key=lambda u: int(u["update_id"]),
        )[:limit]

    def clear(self) -> None:
        """Drop every pending update (drop_pending_updates)."""
        self._updates.clear()

    def pending(self) -> int:
        """Updates queued and not yet confirmed."""
        return len(self._updates)

    def open(self) -> None:
        """Serve long polls again (the server started)."""
        self.closed = False

    def close(self) -> None:
        """Release every long poll now and from now on (the server stops)."""
        self.closed = True
        self.signal.fire()
