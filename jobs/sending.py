"""How a send to Telegram can end, as the delivery workers (broadcasts, reminders) see it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable


class Blocked(Exception):
    """The recipient blocked the bot or the chat is gone: never retry."""


class RetryLater(Exception):
    """The server asked us to slow down for `seconds`."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"retry after {seconds}s")
        self.seconds = seconds


Send = Callable[[int, str], Awaitable[None]]
