"""Telegram's send limit in groups: at most 20 messages a minute per group, else 429."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

from botapi_emulator.errors import ApiError

WINDOW = 60.0


class SendLimits:
    """Per-chat sliding one-minute windows of bot messages, for the chats the caller limits."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.group_per_minute: int | None = 20  # None: no limit
        self._clock = clock
        self._sent: dict[int, deque[float]] = {}

    def take(self, chat_id: int) -> None:
        """Count one message to this group, or raise 429 with the seconds until a slot frees."""
        limit = self.group_per_minute
        if limit is None:
            return
        now = self._clock()
        window = self._sent.setdefault(chat_id, deque())
        while window and window[0] <= now - WINDOW:
            window.popleft()
        if len(window) >= limit:
            retry_after = max(1, math.ceil(window[-limit] + WINDOW - now))
            raise ApiError(429, f"Too Many Requests: retry after {retry_after}", retry_after)
        window.append(now)
