"""Injected trouble: failing methods, slow methods and chats that blocked the bot."""

from __future__ import annotations

from typing import Any

from botapi_emulator.errors import ApiError, fault_error


class Faults:
    """Queued faults and delays per method ("*" = any) and the set of blocked chats."""

    def __init__(self) -> None:
        self._faults: dict[str, list[list[Any]]] = {}
        self._delays: dict[str, list[list[float]]] = {}
        self._blocked: set[int] = set()

    def fail(
        self,
        method: str,
        *,
        status: int = 500,
        times: int = 1,
        retry_after: int | None = None,
        description: str | None = None,
    ) -> None:
        """Make the next `times` calls of `method` ("*" = any) fail; retry_after implies 429."""
        if retry_after is not None and status == 500:
            status = 429
        self._faults.setdefault(method.lower(), []).append(
            [status, retry_after, description, times]
        )

    def slow(self, method: str, *, delay: float, times: int = 1) -> None:
        """Make the next `times` calls of `method` sleep `delay` seconds before being handled."""
        self._delays.setdefault(method.lower(), []).append([delay, times])

    def block(self, user_id: int) -> None:
        """Every send to this chat answers 403 until unblock()."""
        self._blocked.add(user_id)

    def unblock(self, user_id: int) -> None:
        """Undo block()."""
        self._blocked.discard(user_id)

    def take_fault(self, method: str) -> ApiError | None:
        """Consume the next injected fault for `method`, if any."""
        for key in (method.lower(), "*"):
            queue = self._faults.get(key)
            if queue:
                status, retry_after, description, _ = queue[0]
                queue[0][3] -= 1
                if queue[0][3] <= 0:
                    queue.pop(0)
                return fault_error(status, retry_after, description)
        return None

    def take_delay(self, method: str) -> float:
        """Consume the next injected delay for `method` (0 if none)."""
        for key in (method.lower(), "*"):
            queue = self._delays.get(key)
            if queue:
                delay = queue[0][0]
                queue[0][1] -= 1
                if queue[0][1] <= 0:
                    queue.pop(0)
                return delay
        return 0.0

    def check_chat(self, chat_id: int) -> None:
        """Raise 403 if the chat is blocked."""
        if chat_id in self._blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
